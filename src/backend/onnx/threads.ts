/**
 * `threads: 'auto'`: which of two onnxruntime sessions of one compiled model runs next, one of 1 intra-op thread
 * or one of all cores, from the run times each measured. On a quiet 2-core VM all cores win (MLP step 1.7–2.1 ms
 * against 2.2–2.6 ms); with one or two busy neighbour processes one thread wins by 1.5–2.5× (a pool thread that
 * loses its core stalls every op's barrier). The load of a shared machine comes and goes, so the choice is
 * re-measured now and then by a probe of the other session (a few runs of it).
 *
 * The two give the same values (onnxruntime's CPU kernels split work by output elements, never one sum between
 * threads: checked bit for bit on MLPs and a conv net in test/onnxThreads.test.ts), so switching between them
 * mid-training changes no result.
 */

/** 0: the 1-thread session; 1: the all-cores one. */
export type ThreadChoice = 0 | 1;

/** Runs of each session at the start: the first (which allocates the session's buffers) is not timed. */
const WARM = 4;
/** Exploiting runs between two probes of the other session: from MIN, doubled each time a probe confirms the choice. */
const PROBE_MIN = 8;
const PROBE_MAX = 128;
/**
 * Runs of one probe, and how many of them are not counted: a session idle for a while runs its first steps slower
 * (its pool threads, caches and the VM's idle vCPU come back cold: the first run 2.3×, the next ones still ~10 %),
 * which made probes of all cores lose to 1 thread on a quiet machine.
 */
const PROBE_RUNS = 6;
const PROBE_COLD = 2;
/**
 * The other session must be this much faster to take over: on a shared VM run times jitter by 10 % and more, and
 * at 0.95 a quiet 'auto' spent a third of its runs on 1 thread (a busy neighbour changes the times by 2× and more).
 */
const SWITCH_BELOW = 0.9;
/**
 * The running session's time (the median of a whole window of runs since the last probe) moving past this factor
 * of its time at the last probe, either way (load came or went), probes at once.
 */
const DRIFT = 1.5;
/** Each session's time is the median of its last runs: one descheduled run (10× the others) moves no choice. */
const WINDOW = 8;

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export class ThreadChooser {
  /** The last timed runs of each session (ms). */
  private readonly recent: [number[], number[]] = [[], []];
  private readonly seen: [number, number] = [0, 0];
  private current: ThreadChoice = 1;
  private settled = false;
  private sinceProbe = 0;
  private interval = PROBE_MIN;
  /** The running session's time when the last probe ended. */
  private atProbe = NaN;
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
    if (this.seen[choice]++ === 0) return;
    if (!this.settled) {
      this.recent[choice].push(ms);
      if (this.seen[0] === WARM && this.seen[1] === WARM) {
        this.settled = true;
        this.current = this.time(0) < SWITCH_BELOW * this.time(1) ? 0 : 1;
        this.atProbe = this.time(this.current);
      }
      return;
    }
    if (choice !== this.current) {
      // A probe: its warm runs are the other session's time now.
      const burst = (this.burst ??= []);
      burst.push(ms);
      if (burst.length < PROBE_RUNS) return;
      this.burst = undefined;
      this.recent[choice] = burst.slice(PROBE_COLD);
      this.sinceProbe = 0;
      if (this.time(choice) < SWITCH_BELOW * this.time(this.current)) {
        this.current = choice;
        this.interval = PROBE_MIN;
      } else this.interval = Math.min(PROBE_MAX, this.interval * 2);
      this.atProbe = this.time(this.current);
      return;
    }
    const r = this.recent[choice];
    r.push(ms);
    if (r.length > WINDOW) r.shift();
    this.sinceProbe++;
    const now = this.time(choice);
    if (this.sinceProbe >= WINDOW && (now > DRIFT * this.atProbe || now * DRIFT < this.atProbe)) {
      // The machine got busier or quieter: look at the other session now. The interval stays: a load that
      // jitters past DRIFT again and again (another process's tests here) had probes every ~10 runs, 40 % of
      // the runs on the slower session; a probe that confirms the choice still doubles it.
      this.sinceProbe = this.interval;
    }
  }

  /** A session's current time: the median of its last runs. */
  private time(choice: ThreadChoice): number {
    return median(this.recent[choice]);
  }

  /** The current times (ms) and choice, for the bench. */
  state(): { current: ThreadChoice; estimates: readonly [number, number]; runs: readonly [number, number] } {
    return { current: this.current, estimates: [this.time(0), this.time(1)], runs: [...this.runs] };
  }
}
