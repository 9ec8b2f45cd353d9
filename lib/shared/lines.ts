/** Reading a byte stream as text lines: the one splitter the client and the benchmarks share. */

/** Yields each line of `input` (UTF-8) without its `\n` or `\r\n`; a last unterminated line too. */
export async function* readLines(input: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const text of input.pipeThrough(new TextDecoderStream())) {
    buffered += text;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline).replace(/\r$/, "");
      buffered = buffered.slice(newline + 1);
    }
  }
  if (buffered !== "") yield buffered.replace(/\r$/, "");
}
