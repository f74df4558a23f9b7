// Evaluating at the averaged weights an `emaParams` keeps: by substitution (nothing changes state) or by a swap.
import { SymflowError } from '../graph/errors.js';
import type { Update } from '../graph/cond.js';
import { substitute } from '../graph/substitute.js';
import type { Tensor, Variable } from '../graph/tensor.js';
import type { SessionFunction } from '../session/session.js';
import type { TrainStep } from './compile.js';

function averagesOf(who: string, train: TrainStep): readonly Variable[] {
  const a = train?.averages;
  if (a === undefined) throw new SymflowError(who, `the train step's optimizer keeps no averages of the parameters; add emaParams({decay}) as the last link of its chain`);
  return a;
}

/**
 * The same tensors computed at the averaged parameters: a copy of their graph reading each parameter's average
 * instead (nothing is written, so it is safe beside running steps). E.g. `session.run(atAverages(train, [acc]), feeds)`.
 * @param train a train step whose optimizer has `emaParams` @param tensors what to evaluate
 */
export function atAverages(train: TrainStep, tensors: readonly Tensor[]): Tensor[] {
  const averages = averagesOf('atAverages', train);
  return substitute(tensors, new Map<Tensor, Tensor>(train.params.map((p, i) => [p, averages[i]!])));
}

const swaps = new WeakMap<TrainStep, SessionFunction>();

/**
 * Swaps the parameters and their averages, in one run (it reads both before it writes either): call it once to
 * put the averages in (to save or export them), again to put the trained values back.
 * @param train a train step whose optimizer has `emaParams`
 */
export async function swapAverages(train: TrainStep): Promise<void> {
  const averages = averagesOf('swapAverages', train);
  let f = swaps.get(train);
  if (f === undefined) {
    f = train.session.function({ updates: train.params.flatMap((p, i): Update[] => [[p, averages[i]!], [averages[i]!, p]]) });
    swaps.set(train, f);
  }
  await f();
}
