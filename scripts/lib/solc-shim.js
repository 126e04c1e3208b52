#!/usr/bin/env node
// forge calls `solc` as a native binary; solc-js's own CLI lacks flags forge passes
// (--allow-paths, ...). This shim answers the two calls forge makes: `--version` and
// `--standard-json` on stdin, resolving imports against --base-path / --include-path.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const argv = process.argv.slice(2);

if (argv.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}

function optionValues(name) {
  const values = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === name && i + 1 < argv.length) values.push(argv[++i]);
    else if (argv[i].startsWith(name + '=')) values.push(argv[i].slice(name.length + 1));
  }
  return values;
}

const roots = [...optionValues('--base-path'), ...optionValues('--include-path'), process.cwd()];

function findImports(importPath) {
  const candidates = path.isAbsolute(importPath)
    ? [importPath]
    : roots.map((root) => path.resolve(root, importPath));
  for (const candidate of candidates) {
    try {
      return { contents: fs.readFileSync(candidate, 'utf8') };
    } catch (_) {
      // try the next root
    }
  }
  return { error: `File not found: ${importPath} (searched ${roots.join(', ')})` };
}

if (!argv.includes('--standard-json')) {
  process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
  process.exit(1);
}

const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks).toString('utf8');
  process.stdout.write(solc.compile(input, { import: findImports }));
});
