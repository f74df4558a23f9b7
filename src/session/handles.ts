import { SymflowError } from '../graph/errors.js';
import type { HostTensor } from '../graph/hostValue.js';
import type { Variable } from '../graph/tensor.js';
import type { DeviceTensor } from '../backend/index.js';
import type { Session } from './session.js';

/** A value already on the session's backend, fed without another host-to-device copy. */
export class DeviceValue {
  /** @internal */
  constructor(
    /** The session whose backend holds the value; it can be fed only to that session's functions. */
    readonly session: Session,
    /** @internal */ readonly tensor: DeviceTensor,
    /** The value's fully known shape. */
    readonly shape: readonly number[],
    /** The value's element type. */
    readonly dtype: HostTensor['dtype'],
  ) {}
  private disposed = false;
  /** Whether `dispose` was called (or the session disposed it); a disposed value cannot be fed. */
  get isDisposed(): boolean {
    return this.disposed;
  }
  /** Frees the backend memory. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.session.forget(this);
    this.session.backendImpl.dispose(this.tensor);
  }
}

/** Values of some variables at one moment; see `Session.snapshot`. */
export class Snapshot {
  private disposed = false;
  /** @internal */
  constructor(private readonly session: Session, private readonly held: Map<Variable, DeviceTensor>) {}

  /**
   * Puts every remembered value back (the snapshot stays usable until disposed). Like `snapshot`, call it inside a
   * `session.transaction` (or with no call in flight), so it never lands in the middle of another call.
   */
  restore(): void {
    if (this.disposed) throw new SymflowError('Snapshot.restore', 'the snapshot is disposed');
    this.session.checkQuiet('Snapshot.restore');
    const backend = this.session.backendImpl;
    this.session.assign([...this.held].map(([v, t]) => [v, backend.alias(t)] as const));
  }

  /** @internal The remembered values of `variables`, as values to feed (each a handle of its own: dispose it). */
  values(variables: readonly Variable[]): DeviceValue[] {
    if (this.disposed) throw new SymflowError('Snapshot.values', 'the snapshot is disposed');
    const backend = this.session.backendImpl;
    return variables.map((v) => {
      const t = this.held.get(v);
      if (t === undefined) throw new SymflowError('Snapshot.values', `variable '${v.name}' is not in the snapshot`);
      return this.session.adopt(backend.alias(t), [...backend.shapeOf(t)], v.dtype);
    });
  }

  /** Releases the remembered values (also after the session is disposed: they are backend tensors of their own). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.session.forget(this);
    for (const t of this.held.values()) this.session.backendImpl.dispose(t);
    this.held.clear();
  }
}
