// The npm package carries the very files the tether server serves under /static/.
//
// Their one home is src/tether/service/static/ (the Python wheel ships them from
// there). `npm pack` and `npm publish` run `copy` first, which puts them, byte for
// byte, into dist/ (git-ignored), and `clean` afterwards, so no second copy ever
// lives in the repository to drift from the first.
//
// tether.js is the entry module; the modules it imports live in tether/ beside
// it, and every one of them is copied (a new module ships without a list to edit).
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const STATIC = new URL("../../../src/tether/service/static/", import.meta.url);
const DIST = new URL("../dist/", import.meta.url);
const MODULES = readdirSync(new URL("tether/", STATIC))
  .filter((name) => name.endsWith(".js"))
  .sort()
  .map((name) => `tether/${name}`);
export const FILES = ["tether.js", ...MODULES, "tether.d.ts", "tether-dialog.css"];

const command = process.argv[2];
if (command === "copy") {
  rmSync(DIST, { recursive: true, force: true });
  mkdirSync(new URL("tether/", DIST), { recursive: true });
  for (const name of FILES) copyFileSync(new URL(name, STATIC), new URL(name, DIST));
} else if (command === "clean") {
  rmSync(DIST, { recursive: true, force: true });
} else {
  console.error(`usage: node ${fileURLToPath(import.meta.url)} copy|clean`);
  process.exit(2);
}
