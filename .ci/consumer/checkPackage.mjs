// Checks an installed symflow package as its users get it: LICENSE and the license/repository fields, the entry
// points, and source maps that resolve — every sourceMappingURL names a map inside the package, and every source a
// map lists exists inside the package.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(process.argv[2]);
const problems = [];
const inside = (file) => !relative(root, file).startsWith('..') && existsSync(file);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
if (!existsSync(join(root, 'LICENSE')) || !/MIT License/.test(readFileSync(join(root, 'LICENSE'), 'utf8'))) problems.push('no MIT LICENSE file');
if (pkg.license !== 'MIT') problems.push(`license field is ${pkg.license}`);
if (!pkg.repository) problems.push('no repository field');
for (const entry of [pkg.main, pkg.types, pkg.exports?.['.']?.import, pkg.exports?.['.']?.types]) {
  if (!entry || !inside(join(root, entry))) problems.push(`entry point ${entry} is missing`);
}

const files = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(join(dir, d.name)) : [join(dir, d.name)]));
let maps = 0, sources = 0;
for (const file of files(root).filter((f) => /\.(js|d\.ts)$/.test(f))) {
  const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(file, 'utf8'))?.[1];
  if (url === undefined) continue;
  const map = join(dirname(file), url);
  if (!inside(map)) { problems.push(`${relative(root, file)}: sourceMappingURL ${url} does not resolve`); continue; }
  maps++;
  const { sourceRoot = '', sources: list } = JSON.parse(readFileSync(map, 'utf8'));
  for (const s of list) {
    sources++;
    if (!inside(join(dirname(map), sourceRoot, s))) problems.push(`${relative(root, map)}: source ${s} is not in the package`);
  }
}
if (maps === 0) problems.push('no source maps at all (the build should emit them, with the sources they name)');
if (problems.length > 0) {
  console.log(problems.slice(0, 20).map((p) => `  ${p}`).join('\n'));
  throw new Error(`the package has ${problems.length} problem(s)`);
}
console.log(`  package: LICENSE, license ${pkg.license}, repository ${pkg.repository}; ${maps} source maps, all ${sources} sources they name are shipped`);
