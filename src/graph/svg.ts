import { type DotOptions, toDot } from './dot.js';
import { SymflowError } from './errors.js';
import type { Tensor } from './tensor.js';

/**
 * Graph pictures as SVG, rendered by Graphviz compiled to WebAssembly (`@viz-js/viz`, an optional peer
 * dependency). It is imported on first use only, so symflow runs without it until a picture is asked for.
 */

/** What symflow uses of `@viz-js/viz`. */
interface Viz {
  render(dot: string, options: { format: string; engine?: string }): { status: string; output?: string; errors: readonly { level?: string; message: string }[] };
}

// Loaded through a variable so that neither TypeScript nor a bundler insists on this optional peer.
const VIZ = '@viz-js/viz';
const instances = new Map<string, Promise<Viz>>();

/** @internal The Graphviz instance (one per process), or a SymflowError saying how to install it. */
export function loadViz(who: string, moduleName = VIZ): Promise<Viz> {
  let viz = instances.get(moduleName);
  if (viz === undefined) {
    viz = (async () => {
      let mod: { instance?: () => Promise<Viz> };
      try {
        mod = (await import(moduleName)) as { instance?: () => Promise<Viz> };
      } catch (e) {
        const missing = (e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' || /Cannot find (module|package)/.test(String(e));
        throw new SymflowError(who, missing
          ? `SVG pictures need Graphviz as WebAssembly, the optional peer dependency ${moduleName}: npm install ${moduleName} (toDot needs nothing)`
          : `could not load ${moduleName}: ${(e as Error).message ?? String(e)}`);
      }
      if (typeof mod.instance !== 'function') throw new SymflowError(who, `${moduleName} has no instance() (expected @viz-js/viz 3)`);
      return mod.instance();
    })();
    instances.set(moduleName, viz);
    // A failed load is not remembered: installing the package mid-process then works.
    viz.catch(() => instances.delete(moduleName));
  }
  return viz;
}

/**
 * Renders DOT text (from `toDot`, `planToDot` or anywhere) to an SVG document with Graphviz's `dot` layout.
 *
 * ```ts
 * writeFileSync('model.svg', await dotToSvg(toDot(loss)));
 * ```
 * @param dot the DOT text
 * @returns the SVG text
 */
export function dotToSvg(dot: string): Promise<string> {
  return renderSvg('dotToSvg', dot);
}

/** @internal `dotToSvg`, its errors naming `who` (toSvg, planToSvg, …). */
export async function renderSvg(who: string, dot: string): Promise<string> {
  if (typeof dot !== 'string') throw new SymflowError(who, `dot must be a string, got ${typeof dot}`);
  const viz = await loadViz(who);
  const result = viz.render(dot, { format: 'svg', engine: 'dot' });
  if (result.status !== 'success' || result.output === undefined) {
    const errors = result.errors.filter((e) => e.level !== 'warning').map((e) => e.message.trim());
    throw new SymflowError(who, `Graphviz could not render the graph: ${errors.join('; ') || result.status}`);
  }
  return result.output;
}

/**
 * A computation as an SVG picture: `toDot` rendered by Graphviz (`@viz-js/viz`, imported on first use; without it
 * the promise rejects with a SymflowError saying `npm install @viz-js/viz`).
 *
 * ```ts
 * writeFileSync('out/model.svg', await toSvg(loss, { rankdir: 'LR' }));
 * ```
 * @param outputs the tensor(s) to draw, with everything they depend on
 * @param opts as `toDot`
 * @returns the SVG text
 */
export async function toSvg(outputs: Tensor | readonly Tensor[], opts: DotOptions = {}): Promise<string> {
  return renderSvg('toSvg', toDot(outputs, opts));
}
