/**
 * Runs `fn` over `items` with at most `limit` at a time; results in input order. After the first
 * failure no new item starts, the ones running finish, and that failure is thrown.
 */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
  return results;
}

/**
 * Waits for all of `tasks`, started together, and fails as running them one after the other
 * would have: with the error of the first task in the list that failed. For checks whose order
 * decides which problem a user is told about.
 */
export async function allInOrder(tasks: Array<Promise<unknown>>): Promise<void> {
  const settled = await Promise.allSettled(tasks);
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
}

/**
 * `task`, started now to be awaited later, after other things: a failure it meets meanwhile is
 * not an unhandled rejection (it is thrown where the caller awaits it, if it gets that far).
 */
export function startedEarly<T>(task: Promise<T>): Promise<T> {
  task.catch(() => undefined);
  return task;
}
