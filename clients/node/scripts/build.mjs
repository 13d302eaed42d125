// The package build: copy the repository's Lua scripts (guard/lua) into lua/, compile the
// TypeScript sources to CommonJS (dist/cjs, with .d.ts), and write the ESM entry
// (dist/esm/index.mjs), a thin wrapper that re-exports the CommonJS build so both module
// systems share one copy of the code (one Guard class, one error hierarchy).
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const repoLua = join(root, "..", "..", "guard", "lua");

// 1. Lua scripts. Outside the repository (an unpacked tarball) lua/ is already there.
if (existsSync(repoLua)) {
  rmSync(join(root, "lua"), { recursive: true, force: true });
  mkdirSync(join(root, "lua"));
  for (const f of readdirSync(repoLua).filter((n) => n.endsWith(".lua"))) {
    copyFileSync(join(repoLua, f), join(root, "lua", f));
  }
}

// 2. TypeScript -> dist/cjs
rmSync(join(root, "dist"), { recursive: true, force: true });
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json")], { stdio: "inherit" });
writeFileSync(join(root, "dist", "cjs", "package.json"), '{"type": "commonjs"}\n');

// 3. ESM wrapper: every named export of the CommonJS build.
const require = createRequire(import.meta.url);
const names = Object.keys(require(join(root, "dist", "cjs", "index.js"))).filter((n) => n !== "default");
mkdirSync(join(root, "dist", "esm"));
writeFileSync(
  join(root, "dist", "esm", "index.mjs"),
  `import cjs from "../cjs/index.js";\nexport const { ${names.join(", ")} } = cjs;\nexport default cjs;\n`,
);
writeFileSync(join(root, "dist", "esm", "index.d.mts"), `export * from "../cjs/index.js";\n`);
