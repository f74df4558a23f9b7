import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The transaction an async context runs in. A call made inside one of its queue's transactions runs right there
 * (it is part of it); a call from anywhere else waits in the queue until the transaction ends.
 */
interface Transaction {
  readonly queue: TransactionQueue;
  open: boolean;
}

const currentTransaction = new AsyncLocalStorage<Transaction>();

/**
 * A session's calls, one transaction at a time, in the order they were issued. Which transaction a call belongs
 * to is carried by the async context (AsyncLocalStorage), so code running inside a transaction — a training step's
 * runs, its snapshot and rollback — needs no token to pass around.
 */
export class TransactionQueue {
  private tail: Promise<unknown> = Promise.resolve();
  /** Transactions queued or running. */
  private waiting = 0;

  /** @param refuse why a transaction that reaches the head of the queue may not run (e.g. a disposed session) */
  constructor(private readonly refuse: (who: string) => Error | undefined) {}

  /** Whether the caller runs inside one of this queue's open transactions. */
  get inTransaction(): boolean {
    const t = currentTransaction.getStore();
    return t !== undefined && t.open && t.queue === this;
  }

  /** Whether any transaction is queued or running. */
  get busy(): boolean {
    return this.waiting > 0;
  }

  /**
   * Runs `fn` as one transaction after every transaction issued before it; inside an open transaction of this
   * queue, `fn` is part of it and runs at once.
   */
  run<T>(fn: () => Promise<T> | T, who: string): Promise<T> {
    if (this.inTransaction) return (async () => fn())();
    this.waiting++;
    const txn: Transaction = { queue: this, open: true };
    const start = () => currentTransaction.run(txn, async () => {
      try {
        const refused = this.refuse(who);
        if (refused !== undefined) throw refused;
        return await fn();
      } finally {
        txn.open = false;
        this.waiting--;
      }
    });
    const result = this.tail.then(start, start);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
