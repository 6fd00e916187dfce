// Renders Vega specs headless to SVG, for the dashboard checks (tests/dashboard_preview.py).
//
// Reads a JSON array of jobs on stdin, each {"spec": <Vega spec>, "data": [<data set names>]},
// and writes a JSON array of results, each {"svg": "<svg...>", "data": {<name>: [rows]}} or
// {"error": "..."}: one node process for many specs. Data sets are read back after the view ran,
// so a check can see what the marks were drawn from (the links of a Sankey, say). Without the
// optional canvas package Vega estimates text widths, which is enough for a picture.
"use strict";

const vega = require("vega");

async function render(job) {
  try {
    const view = new vega.View(vega.parse(job.spec), { renderer: "none" });
    await view.runAsync();
    const data = {};
    for (const name of job.data || []) {
      data[name] = view.data(name).map((row) => ({ ...row }));
    }
    const svg = await view.toSVG();
    view.finalize();
    return { svg, data };
  } catch (err) {
    return { error: String(err && err.stack ? err.stack : err) };
  }
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const jobs = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const results = [];
  for (const job of jobs) results.push(await render(job));
  process.stdout.write(JSON.stringify(results));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
