// Runs solcjs (npm `solc`) on a standard-JSON input file and writes the standard-JSON
// output to a file. Used by scripts/compile_contracts.py: solcjs prints a non-JSON line
// before its output on stdout, and large piped output can be cut, so we write a file.
//
// usage: node scripts/solc_compile.js ROOT INPUT.json OUTPUT.json
"use strict";
const fs = require("fs");
const path = require("path");

const [root, inputPath, outputPath] = process.argv.slice(2);
if (!root || !inputPath || !outputPath) {
  process.stderr.write("usage: node solc_compile.js ROOT INPUT.json OUTPUT.json\n");
  process.exit(2);
}
const solc = require(path.join(root, "node_modules", "solc"));

// Import paths stay exactly as written in the sources (they go into the metadata):
// `@openzeppelin/...` resolves into node_modules, anything else relative to ROOT.
function findImports(importPath) {
  const base = importPath.startsWith("@") ? path.join(root, "node_modules") : root;
  const file = path.resolve(base, importPath);
  if (!file.startsWith(path.resolve(base) + path.sep)) {
    return { error: `import outside the project: ${importPath}` };
  }
  try {
    return { contents: fs.readFileSync(file, "utf8") };
  } catch (e) {
    return { error: `not found: ${importPath}` };
  }
}

const input = fs.readFileSync(inputPath, "utf8");
const output = solc.compile(input, { import: findImports });
fs.writeFileSync(outputPath, JSON.stringify({ version: solc.version(), output: JSON.parse(output) }));
