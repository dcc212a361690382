// Compile the contracts with the pinned solcjs (npm solc 0.8.37) for EVM "london" (no PUSH0,
// which FISCO BCOS 3.x's evmone rejects) and write artifacts.json: {Name: {abi, bytecode}}.
// Sources: contracts/*.sol and the subfolders examples/, testing/ and bench/ (source unit names
// are the paths relative to contracts/, so `import "../CrossChainGateway.sol"` works from a
// subfolder).
// Contract names must be unique across all of them.
// Usage: node contracts/build.mjs [OUT.json]   (default: contracts/artifacts.json)
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");
const here = path.dirname(fileURLToPath(import.meta.url));
const SUBFOLDERS = ["examples", "testing", "bench"];
const sources = {};
for (const dir of ["", ...SUBFOLDERS]) {
  const full = path.join(here, dir);
  if (!fs.existsSync(full)) continue;
  for (const file of fs.readdirSync(full).filter((f) => f.endsWith(".sol")).sort()) {
    const unit = dir ? `${dir}/${file}` : file;
    sources[unit] = { content: fs.readFileSync(path.join(full, file), "utf8") };
  }
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: "london",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const artifacts = { compiler: `solc ${solc.version()}`, evmVersion: "london", contracts: {} };
for (const file of Object.keys(output.contracts).sort()) {
  for (const [name, c] of Object.entries(output.contracts[file])) {
    if (name in artifacts.contracts) {
      console.error(`contract name ${name} is defined twice (second time in ${file})`);
      process.exit(1);
    }
    artifacts.contracts[name] = { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
  }
}
const out = process.argv[2] || path.join(here, "artifacts.json");
fs.writeFileSync(out, JSON.stringify(artifacts, null, 2) + "\n");
console.log(`wrote ${out}: ${Object.keys(artifacts.contracts).join(", ")} (${solc.version()})`);
