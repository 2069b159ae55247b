import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';

/** What a command's module exports: its options and what it does. */
export interface CommandImplementation<A> {
  builder: (y: Argv) => Argv<A>;
  handler: (args: ArgumentsCamelCase<A>) => void | Promise<void>;
}

/** A command as `layerfs --help` lists it, and where its implementation is. */
export interface CommandListing<A> {
  /** The name and positionals, as yargs reads them: `mount <target> [mountpoint]`. */
  command: string;
  aliases?: string[];
  describe: string;
  load: () => Promise<CommandImplementation<A>>;
}

/**
 * A yargs command whose module is loaded only when the command is picked: yargs calls the
 * builder then (to parse the command's options or show its help) and awaits it under
 * parseAsync. So a run loads the code of one command, not of all of them (a mount of a cached
 * image then parses no registry client, no extractor, no push or export code).
 */
export function lazyCommand<A>(listing: CommandListing<A>): CommandModule<object, A> {
  let implementation: CommandImplementation<A> | undefined;
  return {
    command: listing.command,
    aliases: listing.aliases,
    describe: listing.describe,
    builder: async (y: Argv) => {
      implementation ??= await listing.load();
      return implementation.builder(y);
    },
    // Run at once when loaded (yargs has run the builder first): the handler's first steps then
    // overlap with what yargs does after calling it (it lays out the command's help text).
    handler: (args: ArgumentsCamelCase<A>) =>
      implementation !== undefined ? implementation.handler(args) : listing.load().then((loaded) => loaded.handler(args)),
  };
}
