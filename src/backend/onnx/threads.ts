/**
 * `threads: 'auto'`: which of two onnxruntime sessions of one compiled model runs next, one of 1 intra-op thread
 * or one of all cores, from the run times each measured. On a quiet 2-core VM all cores win (MLP step 1.7 ms
 * against 2.5 ms); with one or two busy neighbour processes one thread wins by 2× and more (a pool thread that
 * loses its core stalls every op's barrier). The load of a shared machine comes and goes, so the choice is
 * re-measured now and then by a probe run of the other session.
 *
 * The two give the same values (onnxruntime's CPU kernels split work over output elements, never a sum: checked
 * bit for bit on the MLP and the CNN in test/onnxThreads.test.ts), so switching between them mid-training changes no result.
 */

/** 0: the 1-thread session; 1: the all-cores one. */
export type ThreadChoice = 0 | 1;

/** Runs of each session at the start: the first (which allocates the session's buffers) is not timed. */
const WARM = 4;
/** Exploiting runs between two probes of the other session: from MIN, doubled each time a probe confirms the choice. */
const PROBE_MIN = 8;
const PROBE_MAX = 128;
/**
 * Runs of one probe, the first not counted: a session idle for a while runs its first step up to 1.6× slower (its
 * pool threads and caches come back cold), which made a single probe pick 1 thread on a quiet machine.
 */
const PROBE_RUNS = 3;
/** The other session must be this much faster to take over (run times on a shared VM jitter by a few %). */
const SWITCH_BELOW = 0.95;
/** The running session's estimate rising above this factor of its value at the last probe probes at once (load came). */
const DRIFT = 1.25;

export class ThreadChooser {
  /** Smoothed run times (ms) of each session; NaN before its first timed run. */
  private readonly est: [number, number] = [NaN, NaN];
  private readonly seen: [number, number] = [0, 0];
  private current: ThreadChoice = 1;
  private sinceProbe = 0;
  private interval = PROBE_MIN;
  private atProbe = NaN;
  private settled = false;
  /** The times of the probe under way. */
  private burst: number[] | undefined;
  /** Runs each session made (for the bench's report). */
  readonly runs: [number, number] = [0, 0];

  /** The session for the next run. */
  next(): ThreadChoice {
    if (this.seen[1] < WARM) return 1;
    if (this.seen[0] < WARM) return 0;
    return this.burst !== undefined || this.sinceProbe >= this.interval ? ((1 - this.current) as ThreadChoice) : this.current;
  }

  /** Records how long a run of `choice` took (wall ms around onnxruntime's run). */
  record(choice: ThreadChoice, ms: number): void {
    this.runs[choice]++;
    const first = this.seen[choice]++ === 0;
    if (first) return;
    if (!this.settled) {
      this.est[choice] = Number.isNaN(this.est[choice]) ? ms : 0.5 * this.est[choice] + 0.5 * ms;
      if (this.seen[0] === WARM && this.seen[1] === WARM) this.settle();
      return;
    }
    if (choice !== this.current) {
      // A probe: its warm runs' mean is the other session's time now.
      const burst = (this.burst ??= []);
      burst.push(ms);
      if (burst.length < PROBE_RUNS) return;
      this.burst = undefined;
      this.est[choice] = burst.slice(1).reduce((a, b) => a + b, 0) / (PROBE_RUNS - 1);
      this.sinceProbe = 0;
      if (this.est[choice] < SWITCH_BELOW * this.est[this.current]) {
        this.current = choice;
        this.interval = PROBE_MIN;
      } else this.interval = Math.min(PROBE_MAX, this.interval * 2);
      this.atProbe = this.est[this.current];
      return;
    }
    this.est[choice] = 0.9 * this.est[choice] + 0.1 * ms;
    this.sinceProbe++;
    if (this.est[choice] > DRIFT * this.atProbe) {
      // The machine got busier (or quieter, for the other): look at the other session soon.
      this.interval = PROBE_MIN;
      this.sinceProbe = Math.max(this.sinceProbe, PROBE_MIN);
      this.atProbe = this.est[choice];
    }
  }

  /** The faster session after the warm-up runs. */
  private settle(): void {
    this.settled = true;
    this.current = this.est[0] < SWITCH_BELOW * this.est[1] ? 0 : 1;
    this.atProbe = this.est[this.current];
  }

  /** The current estimates (ms) and choice, for the bench. */
  state(): { current: ThreadChoice; estimates: readonly [number, number]; runs: readonly [number, number] } {
    return { current: this.current, estimates: [...this.est], runs: [...this.runs] };
  }
}
