import { Observable, type MonoTypeOperatorFunction } from 'rxjs';
import { SymflowError } from '../../graph/errors.js';
import type { Session } from '../../session/session.js';
import { isAhead, progressOf, sessionOf, type TrainEvent } from '../fit.js';

/**
 * Saves a checkpoint every `n` steps (and passes every event through). The values are read at the step boundary,
 * before the next step starts; the file is written atomically afterwards. Under fit's `stepsPerCall`, a save due
 * inside a call is made at the call's last step (the first boundary where the state is that after an event). The stream completes only after the
 * last save is on disk, and a failed save errors the stream.
 * ```ts
 * fit(train, data, { epochs: 10 }).pipe(checkpointEvery(500, 'run/ckpt.bin'));
 * ```
 * @param n steps between checkpoints @param path the file (overwritten each time)
 * @param session the session to save (default: the one that produced the events)
 * @returns the operator
 */
export function checkpointEvery(n: number, path: string, session?: Session): MonoTypeOperatorFunction<TrainEvent> {
  if (!Number.isInteger(n) || n < 1) throw new SymflowError('checkpointEvery', `n must be a positive integer, got ${n}`);
  if (typeof path !== 'string' || path.length === 0) throw new SymflowError('checkpointEvery', 'path must be a non-empty string');
  return (source) => new Observable<TrainEvent>((subscriber) => {
    let steps = 0;
    // A save due at a step inside a call of several steps (fit's stepsPerCall) waits for the call's last event.
    let due = false;
    let saving: Promise<void> = Promise.resolve();
    let failed = false;
    const fail = (e: unknown) => {
      failed = true;
      subscriber.error(e);
    };
    return source.subscribe({
      next: (e) => {
        subscriber.next(e);
        if (e.type === 'step' && ++steps % n === 0) due = true;
        if (!due || e.type === 'epoch' || isAhead(e)) return;
        due = false;
        const s = session ?? sessionOf(e);
        if (s === undefined) {
          fail(new SymflowError('checkpointEvery', 'events do not come from fit; pass the session'));
          return;
        }
        // save() reads the values now (in the session's call order); writing goes on in the background.
        // With it goes where the fit stands, so `fit(…, {resumeFrom: path})` can continue the same run.
        const progress = progressOf(e);
        const save = s.save(path, progress === undefined ? {} : { meta: { fit: progress } });
        saving = saving.then(() => save).catch((err) => { if (!failed) fail(err); });
      },
      error: (e) => subscriber.error(e),
      complete: () => { void saving.then(() => { if (!failed) subscriber.complete(); }); },
    });
  });
}
