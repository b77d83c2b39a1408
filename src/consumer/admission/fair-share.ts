/**
 * Fair shares, pure. Two resources are shared between partitions that
 * have work: the in-flight budget (admission) and the concurrency limit
 * (dispatch). A partition may use more than its share only while nobody
 * else wants it.
 */

/** A partition's part of `maxInFlight` when every assigned partition wants more. */
export function budgetShare(maxMessages: number, assignedPartitions: number): number {
  return Math.max(1, Math.ceil(maxMessages / Math.max(1, assignedPartitions)));
}

/** A partition's part of the concurrency limit while `busyPartitions` have work in flight. */
export function concurrencyShare(concurrency: number, busyPartitions: number): number {
  return Math.ceil(concurrency / Math.max(1, busyPartitions));
}

/**
 * Held back by its share of the budget: the budget is contended (past its
 * low mark) and the partition already holds its share.
 */
export function overBudgetShare(inFlight: number, share: number, budgetLow: boolean): boolean {
  return !budgetLow && inFlight >= share;
}

/**
 * Still above the low mark of its share: what a `partition-full` pause
 * lasts for, so it ends only once a chunk of the partition's own work is
 * done, not at every finished message.
 */
export function holdsBudgetShare(
  inFlight: number,
  share: number,
  resumeThreshold: number,
): boolean {
  return inFlight > share * resumeThreshold;
}
