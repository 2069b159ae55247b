import type { Argv } from 'yargs';
import { lazyCommand } from '../lazy-command.js';

/**
 * Every command, in the order `layerfs --help` lists them: its usage and summary here, its
 * options and handler in its module, which is loaded only when the command runs (see
 * ../lazy-command.ts).
 */
export function withCommands(y: Argv): Argv {
  return y
    .command(lazyCommand({ command: 'mount <target> [mountpoint]', describe: 'Mount an image (IMAGE MOUNTPOINT) or a union of directories (--lower DIRS MOUNTPOINT)', load: async () => (await import('./mount.js')).mountCommand }))
    .command(lazyCommand({ command: 'umount <mountpoint>', aliases: ['unmount'], describe: 'Unmount a layerfs mount (also clears a stale mount left by a killed daemon)', load: async () => (await import('./umount.js')).umountCommand }))
    .command(lazyCommand({ command: 'images', describe: 'List images in the local store', load: async () => (await import('./images.js')).imagesCommand }))
    .command(lazyCommand({ command: 'rmi <images..>', describe: 'Remove images (and the layers no other image uses)', load: async () => (await import('./rmi.js')).rmiCommand }))
    .command(lazyCommand({ command: 'prune', describe: 'Remove layers and blobs no image uses (--all: also every image no mount uses)', load: async () => (await import('./prune.js')).pruneCommand }))
    .command(lazyCommand({ command: 'df', describe: 'Show store disk usage: shared layers counted once, and what prune would reclaim', load: async () => (await import('./df.js')).dfCommand }))
    .command(lazyCommand({ command: 'check', describe: 'Verify blobs and extracted layers; --repair drops damaged entries', load: async () => (await import('./check.js')).checkCommand }))
    .command(lazyCommand({ command: 'pull <image>', describe: 'Pull an image into the local store (registry reference, oci:DIR[:REF] or docker-archive:FILE[:REF])', load: async () => (await import('./pull.js')).pullCommand }))
    .command(lazyCommand({ command: 'push <image> [destination]', describe: 'Upload an image from the local store to a registry (under its own name, or DESTINATION)', load: async () => (await import('./push.js')).pushCommand }))
    .command(lazyCommand({ command: 'tag <source> <target>', describe: 'Give an image of the local store another name', load: async () => (await import('./tag.js')).tagCommand }))
    .command(lazyCommand({ command: 'ps', describe: 'List image mounts and writable layers', load: async () => (await import('./ps.js')).psCommand }))
    .command(lazyCommand({ command: 'diff <container>', describe: 'List what a writable layer (NAME or MOUNTPOINT) changed: A added, C changed, D deleted', load: async () => (await import('./diff.js')).diffCommand }))
    .command(lazyCommand({ command: 'commit <container> <repository>', describe: 'Make a new image from a writable layer (NAME or MOUNTPOINT) on top of its image', load: async () => (await import('./commit.js')).commitCommand }))
    .command(lazyCommand({ command: 'export <source> <file>', describe: 'Write the flattened root filesystem of an image or a writable layer (NAME) as one tar ("-": stdout)', load: async () => (await import('./export.js')).exportCommand }))
    .command(lazyCommand({ command: 'save <image> <file>', describe: 'Write an image as an archive: OCI layout tar, or docker-archive for docker load ("-": stdout)', load: async () => (await import('./export.js')).saveCommand }))
    .command(lazyCommand({ command: 'rm <names..>', describe: 'Delete writable layers that are not mounted', load: async () => (await import('./rm.js')).rmCommand }))
    .command(lazyCommand({ command: 'inspect <image>', describe: 'Print an image\'s manifest, config and layers as JSON (from the store, or --remote)', load: async () => (await import('./inspect.js')).inspectCommand }))
    .command(lazyCommand({ command: 'tags <repository>', describe: 'List the tags of a repository on its registry', load: async () => (await import('./tags.js')).tagsCommand }))
    .command(lazyCommand({ command: 'login <registry>', describe: 'Store credentials for a registry (in ~/.docker/config.json or its credential helper)', load: async () => (await import('./login.js')).loginCommand }))
    .command(lazyCommand({ command: 'logout <registry>', describe: 'Remove stored credentials for a registry', load: async () => (await import('./login.js')).logoutCommand }));
}
