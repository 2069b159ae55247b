import { createInterface } from 'node:readline';

/** All of standard input, as text (for --password-stdin). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** One line from the terminal; with `hidden`, typed characters are not echoed (passwords). */
export async function readSecret(prompt: string, hidden: boolean): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (hidden) {
    // readline echoes through _writeToOutput; muting it after the prompt hides the password.
    const internal = rl as unknown as { _writeToOutput: (s: string) => void };
    let prompted = false;
    internal._writeToOutput = (s: string) => {
      if (!prompted) {
        process.stderr.write(s);
        prompted = true;
      }
    };
  }
  try {
    return await new Promise<string>((resolve) => rl.question(prompt, resolve));
  } finally {
    if (hidden) process.stderr.write('\n');
    rl.close();
  }
}
