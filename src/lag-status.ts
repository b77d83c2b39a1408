/**
 * The three levels every lag signal in the library speaks: the lag monitor
 * produces them, the consumer's own lag tracking emits them, the
 * rate-limited producer and the upstream-pause rule consume them.
 */
export type LagStatus = 'ok' | 'warning' | 'critical';

export const LAG_STATUSES: readonly LagStatus[] = ['ok', 'warning', 'critical'];
