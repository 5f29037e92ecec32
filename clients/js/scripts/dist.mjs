// The npm package carries the very files the tether server serves under /static/.
//
// Their one home is src/tether/service/static/ (the Python wheel ships them from
// there). `npm pack` and `npm publish` run `copy` first, which puts them, byte for
// byte, into dist/ (git-ignored), and `clean` afterwards, so no second copy ever
// lives in the repository to drift from the first.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const STATIC = new URL("../../../src/tether/service/static/", import.meta.url);
const DIST = new URL("../dist/", import.meta.url);
export const FILES = ["tether.js", "tether.d.ts", "tether-dialog.css"];

const command = process.argv[2];
if (command === "copy") {
  rmSync(DIST, { recursive: true, force: true });
  mkdirSync(DIST);
  for (const name of FILES) copyFileSync(new URL(name, STATIC), new URL(name, DIST));
} else if (command === "clean") {
  rmSync(DIST, { recursive: true, force: true });
} else {
  console.error(`usage: node ${fileURLToPath(import.meta.url)} copy|clean`);
  process.exit(2);
}
