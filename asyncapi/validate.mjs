// Validates every AsyncAPI document in this folder with the official AsyncAPI parser.
// Usage: node asyncapi/validate.mjs  (the parser comes from `make install` into .var/assets)
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", ".var", "assets", "node_modules", "x.js"));
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");

const parser = new Parser();
let failed = 0;
for (const file of readdirSync(here).filter((f) => f.endsWith(".yaml"))) {
  const { document, diagnostics } = await parser.parse(readFileSync(join(here, file), "utf8"));
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  if (!document || errors.length) {
    failed += 1;
    console.error(`INVALID ${file}`);
    for (const e of errors) console.error(`  ${e.path.join(".")}: ${e.message}`);
  } else {
    const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning).length;
    console.log(`valid   ${file} (AsyncAPI ${document.version()}, ${document.channels().length} channels, ${warnings} warnings)`);
  }
}
process.exit(failed ? 1 : 0);
