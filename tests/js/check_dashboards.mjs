// Type-check dashboard JSON against Grafana's own schema: the TypeScript types that Grafana
// generates from its CUE schema and publishes as @grafana/schema (pinned to the Grafana version
// docker-compose.yml runs). Why types and not a JSON Schema: Grafana publishes no JSON Schema for
// dashboards; these generated types are the schema it ships. Each dashboard becomes one
// TypeScript module: the whole JSON typed as `Dashboard`, and each panel's `options` and
// `fieldConfig.defaults.custom` typed as its panel plugin's `Options` / `FieldConfig`, so an
// unknown key (a typo, an option a newer Grafana dropped) or a wrong value ("bar" for a draw
// style) is an error. Two relaxations, both how Grafana itself reads saved JSON: enum members
// are their string values, and panel options may be omitted (the plugin fills in defaults).
//
// Input (argv): dashboard JSON files. Output (stdout): a JSON array of
// {"file": <name>, "where": <dashboard | panel id/title>, "error": <text>}. Exit 0 unless the
// check itself could not run.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const PLUGIN_TYPES = {
  // panel type -> module of @grafana/schema with its Options (and FieldConfig, when it has one)
  barchart: "barchart/panelcfg/x/BarChartPanelCfg_types.gen",
  bargauge: "bargauge/panelcfg/x/BarGaugePanelCfg_types.gen",
  gauge: "gauge/panelcfg/x/GaugePanelCfg_types.gen",
  heatmap: "heatmap/panelcfg/x/HeatmapPanelCfg_types.gen",
  histogram: "histogram/panelcfg/x/HistogramPanelCfg_types.gen",
  logs: "logs/panelcfg/x/LogsPanelCfg_types.gen",
  piechart: "piechart/panelcfg/x/PieChartPanelCfg_types.gen",
  stat: "stat/panelcfg/x/StatPanelCfg_types.gen",
  "state-timeline": "statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen",
  "status-history": "statushistory/panelcfg/x/StatusHistoryPanelCfg_types.gen",
  table: "table/panelcfg/x/TablePanelCfg_types.gen",
  text: "text/panelcfg/x/TextPanelCfg_types.gen",
  timeseries: "timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen",
};
const WIRE = `
export type Wire<T> = T extends string ? \`\${T}\` : T extends readonly (infer U)[] ? Wire<U>[]
  : T extends object ? { [K in keyof T]: Wire<T[K]> } : T;
export type Defaulted<T> = T extends string ? \`\${T}\` : T extends readonly (infer U)[] ? Defaulted<U>[]
  : T extends object ? { [K in keyof T]?: Defaulted<T[K]> } : T;
`;

function panelsOf(dashboard) {
  const out = [];
  for (const panel of dashboard.panels ?? []) {
    out.push(panel);
    out.push(...(panel.panels ?? []));
  }
  return out;
}

function moduleText(dashboard, problems, file) {
  // One declaration per part, so that each part's first error is reported (TypeScript stops at
  // the first error inside one object literal).
  const lines = ['import type { Dashboard, Panel, RowPanel, VariableModel } from "@grafana/schema";',
    'import type { Wire, Defaulted } from "./wire";'];
  const where = ["dashboard", "dashboard"];
  const { panels, templating, ...rest } = dashboard;
  lines.push(`export const dashboard: Wire<Dashboard> = ${JSON.stringify({ ...rest, panels: [] })};`);
  where.push("dashboard");
  (templating?.list ?? []).forEach((variable, index) => {
    lines.push(`export const v${index}: Wire<VariableModel> = ${JSON.stringify(variable)};`);
    where.push(`variable ${JSON.stringify(variable.name)}`);
  });
  if (templating && Object.keys(templating).some((key) => key !== "list")) {
    problems.push({ file, where: "templating", error: "templating holds more than `list`" });
  }
  panelsOf(dashboard).forEach((panel, index) => {
    const label = `panel ${panel.id} ${JSON.stringify(panel.title)} (${panel.type})`;
    const { panels: inner, ...own } = panel;
    const kind = panel.type === "row" ? "RowPanel" : "Panel";
    lines.push(`export const panel${index}: Wire<${kind}> = ${JSON.stringify(panel.type === "row" ? { ...own, panels: [] } : panel)};`);
    where.push(label);
    if (panel.type === "row") return;
    const module = PLUGIN_TYPES[panel.type];
    if (!module) {
      problems.push({ file, where: label, error: `no schema known for panel type ${panel.type}` });
      return;
    }
    const alias = `p${index}`;
    lines.push(`import type * as ${alias} from "@grafana/schema/dist/esm/raw/composable/${module}";`);
    where.push(label);
    lines.push(`export const ${alias}_options: Defaulted<${alias}.Options> = ${JSON.stringify(panel.options ?? {})};`);
    where.push(`${label} options`);
    const custom = panel.fieldConfig?.defaults?.custom;
    if (custom !== undefined) {
      lines.push(`export const ${alias}_custom: Defaulted<${alias}.FieldConfig> = ${JSON.stringify(custom)};`);
      where.push(`${label} fieldConfig.defaults.custom`);
    }
  });
  return { text: lines.join("\n") + "\n", where };
}

const files = process.argv.slice(2);
const problems = [];
const work = fs.mkdtempSync(path.join(here, ".dashboard-check-"));
try {
  fs.writeFileSync(path.join(work, "wire.ts"), WIRE);
  const modules = new Map();
  for (const file of files) {
    const name = path.basename(file);
    const target = path.join(work, name.replace(/[^A-Za-z0-9]/g, "_") + ".ts");
    const { text, where } = moduleText(JSON.parse(fs.readFileSync(file, "utf8")), problems, name);
    fs.writeFileSync(target, text);
    modules.set(path.resolve(target), { name, where });
  }
  const program = ts.createProgram([...modules.keys()], {
    strict: true, noEmit: true, skipLibCheck: true, module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler, target: ts.ScriptTarget.ES2022,
  });
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const source = diagnostic.file ? modules.get(path.resolve(diagnostic.file.fileName)) : undefined;
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n").split("\n")[0];
    if (!source) {
      problems.push({ file: "(schema)", where: "", error: message });
      continue;
    }
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
    problems.push({ file: source.name, where: source.where[line] ?? `line ${line + 1}`, error: message.slice(0, 400) });
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(problems));
