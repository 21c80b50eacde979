// Bundles the pages' scripts and stylesheet with esbuild (pinned in package.json) into
// functions/portal/static, the portal function's assets: deterministic output, no CDN or font at run time.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const out = join(root, "..", "functions", "portal", "static");
mkdirSync(out, { recursive: true });

const common = { bundle: true, minify: true, legalComments: "eof", target: ["chrome110", "firefox110", "safari16"], logLevel: "warning" };
await build({ ...common, entryPoints: { portal: join(root, "src/portal.js"), console: join(root, "src/console.js") }, format: "esm", outdir: out });
// The widget is a classic script (an IIFE): a SaaS page includes it with a plain <script src>.
await build({ ...common, entryPoints: { "billing-usage": join(root, "src/widget.js") }, format: "iife", outdir: out });
await build({ ...common, entryPoints: { portal: join(root, "src/pages.css") }, outdir: out, loader: { ".css": "css" } });
for (const page of readdirSync(join(root, "pages"))) copyFileSync(join(root, "pages", page), join(out, page));
