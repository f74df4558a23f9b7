import { asTensor, type TensorLike } from './convert.js';
import { SymflowError } from './errors.js';
import { defineOp, makeNode } from './registry.js';
import { shapesCompatible } from './shapes.js';
import { isTensor, shapeString, type Tensor } from './tensor.js';

/** A hand-written gradient: one entry per input of `f` (`undefined` where there is none), built from public ops. */
export type GradRule<Args extends readonly Tensor[]> = (inputs: Args, output: Tensor, dy: Tensor) => readonly (Tensor | undefined)[];

interface Rule {
  readonly grad: GradRule<readonly Tensor[]>;
  readonly label: string;
}

// Node attributes are plain data, so a node names its rule by number. The table holds rules weakly: a rule lives
// as long as the function customGradient returned or a node built by it does (nodeRules), never longer.
const rules = new Map<number, WeakRef<Rule>>();
const forget = new FinalizationRegistry<number>((id) => rules.delete(id));
const nodeRules = new WeakMap<Tensor, Rule>();
let nextRule = 1;

function ruleOf(y: Tensor): Rule {
  const rule = nodeRules.get(y) ?? rules.get(y.attrs['rule'] as number)?.deref();
  if (rule === undefined) throw new SymflowError('customGradient', `node '${y.name}' has no gradient rule (its function is gone)`);
  return rule;
}

/**
 * The value of its first input (f's output); its other inputs are f's inputs, and its gradient is the user's
 * rule. Input 0 gets no gradient, so the reverse sweep never walks into f's own ops.
 */
export const customGradientOp = defineOp({
  name: 'customGradient',
  attrs: { rule: 'int' },
  infer: (xs) => {
    if (xs.length === 0) throw new SymflowError('customGradient', 'needs the output of f');
    return { shape: xs[0]!.shape, dtype: xs[0]!.dtype };
  },
  grad: (dy, y, inputs) => {
    const rule = ruleOf(y);
    const xs = inputs.slice(1);
    const gs = rule.grad(xs, y, dy);
    checkGrads(rule.label, gs, xs);
    return [undefined, ...gs.map((g) => (g === undefined ? undefined : () => g))];
  },
});

/** One entry per input, each undefined or a float32 tensor of its input's shape (only float32 inputs have one). */
function checkGrads(label: string, gs: unknown, xs: readonly Tensor[]): asserts gs is readonly (Tensor | undefined)[] {
  const who = `'${label}'`;
  if (!Array.isArray(gs)) throw new SymflowError('customGradient', `${who}: grad must return an array (one entry per input), got ${typeof gs}`);
  if (gs.length !== xs.length) throw new SymflowError('customGradient', `${who}: grad returned ${gs.length} entries for ${xs.length} inputs`);
  gs.forEach((g: unknown, i) => {
    const x = xs[i]!;
    if (g === undefined) return;
    if (!isTensor(g)) throw new SymflowError('customGradient', `${who}: grad entry ${i} must be a Tensor or undefined, got ${g === null ? 'null' : typeof g}`);
    if (x.dtype !== 'float32') throw new SymflowError('customGradient', `${who}: input ${i} is ${x.dtype}, which has no gradient; its entry must be undefined`);
    if (g.dtype !== 'float32' || !shapesCompatible(g.shape, x.shape)) {
      throw new SymflowError('customGradient', `${who}: grad entry ${i} is ${g.dtype} ${shapeString(g.shape)}, input ${i} is ${x.dtype} ${shapeString(x.shape)}`);
    }
  });
}

/**
 * A composite with a hand-written gradient (TF's `custom_gradient`, JAX's `custom_vjp`). The forward value is
 * `f(...inputs)`; gradients with respect to the inputs are `grad(inputs, output, dy)`, built from public ops so
 * gradients of it work too. `output` is the result itself, so a rule written with it differentiates by the rule.
 *
 * ```ts
 * // log(1 + eˣ): the naive gradient eˣ / (1 + eˣ) is Inf / Inf = NaN for x ≳ 89; sigmoid(x) is exact.
 * const softplus = customGradient(
 *   (x) => add(maximum(x, 0), log(add(1, exp(neg(abs(x)))))),
 *   ([x], _y, dy) => [mul(dy, sigmoid(x))],
 *   'softplus',
 * );
 * const [dx] = gradients(softplus(x), [x]);
 * ```
 * The rule is a JavaScript function, so a graph that holds one cannot be serialised: `toJSON` refuses it.
 * @param f the forward composite; must return one tensor
 * @param grad the gradient rule: one entry per input, `undefined` for none, each shaped like its input
 * @param name the name of the nodes built (default 'customGradient')
 * @returns a function of the same inputs as `f` (numbers become float32 scalars)
 */
export function customGradient<Args extends Tensor[]>(
  f: (...inputs: Args) => Tensor,
  grad: GradRule<Args>,
  name?: string,
): (...inputs: { [K in keyof Args]: TensorLike }) => Tensor {
  if (typeof f !== 'function' || typeof grad !== 'function') throw new SymflowError('customGradient', 'f and grad must be functions');
  const id = nextRule++;
  const rule: Rule = { grad: grad as unknown as GradRule<readonly Tensor[]>, label: name ?? 'customGradient' };
  rules.set(id, new WeakRef(rule));
  forget.register(rule, id);
  return (...inputs) => {
    const xs = (inputs as readonly TensorLike[]).map((x, i) => asTensor('customGradient', `inputs[${i}]`, x)) as Args;
    const out: unknown = f(...xs);
    if (!isTensor(out)) throw new SymflowError('customGradient', `'${rule.label}': f must return one Tensor, got ${Array.isArray(out) ? 'an array' : typeof out}`);
    const y = makeNode(customGradientOp, [out, ...xs], { rule: id }, name);
    nodeRules.set(y, rule);
    return y;
  };
}
