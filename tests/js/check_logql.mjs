// Parse LogQL expressions with Grafana's own lezer grammar (the one Grafana's Loki query
// editor uses) and report syntax errors. Why a grammar and not a live Loki: the tests must
// run without a Loki server; a Loki-side check belongs to the live end-to-end test.
//
// Input (stdin): a JSON array of strings. Output (stdout): a JSON array, one entry per
// input: {"ok": true} or {"ok": false, "error": "<where and what>"}. Exit 0 unless the
// input itself is unusable.
import { parser } from "@grafana/lezer-logql";

function firstError(expr) {
  const tree = parser.parse(expr);
  let error = null;
  tree.iterate({
    enter(node) {
      if (error === null && node.type.isError) {
        const around = expr.slice(Math.max(0, node.from - 15), node.to + 15);
        error = `syntax error at offset ${node.from}: ...${around}...`;
      }
      return error === null;
    },
  });
  if (error === null && tree.length !== expr.length) {
    error = `parser stopped at offset ${tree.length} of ${expr.length}`;
  }
  return error;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
let expressions;
try {
  expressions = JSON.parse(Buffer.concat(chunks).toString("utf8"));
} catch (err) {
  process.stderr.write(`check_logql: stdin is not JSON: ${err.message}\n`);
  process.exit(2);
}
if (!Array.isArray(expressions) || !expressions.every((e) => typeof e === "string")) {
  process.stderr.write("check_logql: stdin must be a JSON array of strings\n");
  process.exit(2);
}
const results = expressions.map((expr) => {
  const error = expr.trim() === "" ? "empty expression" : firstError(expr);
  return error === null ? { ok: true } : { ok: false, error };
});
process.stdout.write(JSON.stringify(results));
