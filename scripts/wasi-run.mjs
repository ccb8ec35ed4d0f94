// Runs a wasm32-wasip1 program (a cargo test binary) under Node's WASI, as cargo's
// runner: `node --no-warnings scripts/wasi-run.mjs PROGRAM.wasm [ARGS...]`.
//
// The program sees the host's environment and file system as they are: "/" is
// preopened as "/" (the tests find their files through absolute paths built from
// CARGO_MANIFEST_DIR). Nothing else is: the program's working directory is "/"
// (wasi-libc's), so a "." preopen is one more "/", and the later one wins; with "."
// as the host's current directory, "/work/x" meant "./work/x" (the corpus was not
// found, and the accuracy tables went to a stray ./work/). The exit status is the
// program's: a failing test aborts the whole binary (wasm is panic=abort) with a
// non-zero status, which is what CI needs.
import { readFile } from "node:fs/promises";
import process from "node:process";
import { WASI } from "node:wasi";

const [program, ...args] = process.argv.slice(2);
if (!program) {
  console.error("usage: node scripts/wasi-run.mjs PROGRAM.wasm [ARGS...]");
  process.exit(2);
}

const wasi = new WASI({
  version: "preview1",
  args: [program, ...args],
  env: process.env,
  preopens: { "/": "/" },
  returnOnExit: true,
});

const module = await WebAssembly.compile(await readFile(program));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
