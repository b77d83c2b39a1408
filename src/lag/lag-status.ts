/**
 * The three levels every lag signal in the library speaks: the lag monitor
 * produces them; the rate-limited producer and the consumer's upstream-pause
 * rule (`downstreamLag`) follow them. The consumer's own lag is reported as
 * numbers (`lag.sample`), not as a status.
 */
export type LagStatus = 'ok' | 'warning' | 'critical';

export const LAG_STATUSES: readonly LagStatus[] = ['ok', 'warning', 'critical'];

/** 0 for `ok`, 1 for `warning`, 2 for `critical`: the order of severity, and the value of the `kafka_lag_status` metric. */
export function lagStatusLevel(status: LagStatus): 0 | 1 | 2 {
  return status === 'ok' ? 0 : status === 'warning' ? 1 : 2;
}

export function isLagStatus(value: unknown): value is LagStatus {
  return (LAG_STATUSES as readonly unknown[]).includes(value);
}
