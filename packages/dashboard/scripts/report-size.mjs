// Prints every built file's raw and gzipped size and the gzipped total, and fails the build past the budget
// (issue 15: the dashboard ships at most 200 KB gzipped).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET_BYTES = 200 * 1024;
const dist = join(import.meta.dirname, "..", "dist");
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else files.push(path);
  }
};
walk(dist);
let total = 0;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
for (const path of files.sort()) {
  const body = readFileSync(path);
  const gz = gzipSync(body, { level: 9 }).length;
  total += gz;
  console.log(`  ${relative(dist, path).padEnd(40)} ${kb(body.length).padStart(10)}  gzip ${kb(gz).padStart(9)}`);
}
console.log(`dashboard bundle: ${kb(total)} gzipped in ${files.length} files (budget ${kb(BUDGET_BYTES)})`);
if (total > BUDGET_BYTES) {
  console.error(`dashboard bundle is over its budget: ${kb(total)} > ${kb(BUDGET_BYTES)} gzipped`);
  process.exit(1);
}
