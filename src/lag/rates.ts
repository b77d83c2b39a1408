import { lagOf, type LagSample } from './samples.js';

/**
 * Rates over a partition's window, in messages per second: least-squares
 * slopes, so one late or early sample moves them little.
 */

/**
 * Ordinary least-squares slope of y on x. `null` with fewer than two
 * distinct x values. Both axes are shifted to their first point before
 * summing, so large offsets and epoch-millisecond times keep their precision.
 */
export function leastSquaresSlope(
  points: readonly (readonly [x: number, y: number])[],
): number | null {
  const first = points[0];
  if (first === undefined || points.length < 2) return null;
  const [x0, y0] = first;
  let sumX = 0;
  let sumY = 0;
  for (const [x, y] of points) {
    sumX += x - x0;
    sumY += y - y0;
  }
  const meanX = sumX / points.length;
  const meanY = sumY / points.length;
  let sxx = 0;
  let sxy = 0;
  for (const [x, y] of points) {
    const dx = x - x0 - meanX;
    sxx += dx * dx;
    sxy += dx * (y - y0 - meanY);
  }
  return sxx === 0 ? null : sxy / sxx;
}

/** Slope per second of `value` over the samples for which it is defined. */
function ratePerSecond(
  samples: readonly LagSample[],
  value: (sample: LagSample) => number | null,
): number | null {
  const points: [number, number][] = [];
  for (const sample of samples) {
    const y = value(sample);
    if (y !== null) points.push([sample.at / 1000, y]);
  }
  return leastSquaresSlope(points);
}

/** Least-squares slope of the end offsets: messages produced per second. */
export function produceRate(samples: readonly LagSample[]): number | null {
  return ratePerSecond(samples, (s) => s.endOffset);
}

/** Least-squares slope of the committed offsets (samples without one are left out): messages consumed per second. */
export function consumeRate(samples: readonly LagSample[]): number | null {
  return ratePerSecond(samples, (s) => s.committedOffset);
}

/** Least-squares slope of the lag: positive while the backlog grows. */
export function lagRateOfChange(samples: readonly LagSample[]): number | null {
  return ratePerSecond(samples, lagOf);
}
