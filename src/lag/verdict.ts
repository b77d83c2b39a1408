import type { TopicPartition } from '../shared/topic-partition.js';
import type { LagStatus } from './lag-status.js';
import { firstRule, type LagRuleName, type LagRules } from './rules.js';
import type { LagRuleEvent, LagStatusEvent } from './snapshot.js';
import { nextStatus, type LagThresholds } from './thresholds.js';
import type { TimeLag } from './time-lag.js';

/**
 * One round's step of a status and a rule, for a partition or the group:
 * the next verdict, and the events its changes call for.
 */

export interface Verdict {
  readonly status: LagStatus;
  readonly rule: LagRuleName | null;
}

export const FIRST_VERDICT: Verdict = Object.freeze({ status: 'ok', rule: null });

interface Measured {
  readonly lag: number;
  readonly timeLagSeconds: number | null;
  readonly timeLag: TimeLag | null;
  readonly rateOfChange: number | null;
  readonly rules: LagRules;
}

export interface Step {
  readonly next: Verdict;
  readonly status: LagStatusEvent | undefined;
  readonly rule: LagRuleEvent | undefined;
}

export function step(
  groupId: string,
  scope: 'group' | TopicPartition,
  previous: Verdict,
  m: Measured,
  thresholds: LagThresholds,
): Step {
  // The time-lag marks apply to the lower bound, so an uncertain estimate never raises a status.
  const decision = nextStatus(
    previous.status,
    { lag: m.lag, timeLagSeconds: m.timeLag?.minSeconds ?? null, rateOfChange: m.rateOfChange },
    thresholds,
  );
  const rule = firstRule(m.rules);
  return {
    next: { status: decision.status, rule },
    status:
      decision.status === previous.status
        ? undefined
        : {
            groupId,
            scope,
            from: previous.status,
            to: decision.status,
            reason: rule === null ? decision.reason : `${decision.reason}; rule: ${rule}`,
            lag: m.lag,
            timeLagSeconds: m.timeLagSeconds,
            timeLag: m.timeLag,
            rules: m.rules,
          },
    rule:
      rule === previous.rule
        ? undefined
        : { groupId, scope, from: previous.rule, to: rule, lag: m.lag, rules: m.rules },
  };
}
