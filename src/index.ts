export { BackpressureConsumer, sizeOf } from './consumer.js';
export type { ConsumerState, PartitionSnapshot, CloseOptions } from './consumer.js';
export type {
  BackpressureConsumerOptions,
  InboundMessage,
  HandlerContext,
  MessageHandler,
  Deserializer,
  RecordSender,
  RetryOptions,
  DeadLetterOptions,
  CircuitBreakerOptions,
  LatencyOptions,
  AdaptiveConcurrencyOptions,
  OrderingMode,
} from './options.js';
export type { ShedOptions, ShedAction } from './shedding.js';
export type { DownstreamLagOptions } from './downstream-lag.js';
export { registerMetrics, DEFAULT_HANDLER_DURATION_BUCKETS } from './metrics/metrics.js';
export type {
  MetricsRegistry,
  MetricsSources,
  MetricsRegistration,
  MeasuredConsumer,
  PromClient,
  RegisterMetricsOptions,
} from './metrics/metrics.js';
export type * from './events.js';
export type { PauseReason } from './flow-controller.js';
export type { TopicPartition } from './shared/topic-partition.js';
export type { CircuitState } from './circuit.js';
export type { Logger } from './shared/logger.js';
export type { Clock } from './shared/clock.js';
export type { LagStatus } from './lag/lag-status.js';
export { DLQ_HEADERS, DLQ_HEADER_PREFIX } from './dlq.js';
export { LagMonitor } from './lag/lag-monitor.js';
export type {
  LagMonitorOptions,
  ResolvedLagMonitorOptions,
  LagAdmin,
  LagMonitorEvents,
  LagMonitorState,
  LagSnapshot,
  PartitionLag,
  GroupLag,
  LagHistory,
  PartitionHistory,
  LagStatusEvent,
  LagRecommendationEvent,
  LagErrorEvent,
} from './lag/lag-monitor.js';
export type {
  LagSample,
  LagRules,
  LagThresholds,
  LagRecommendation,
  PartitionAnalysis,
  GroupAnalysis,
} from './lag/lag-window.js';
export { RateLimitedProducer } from './producer/rate-limited-producer.js';
export type {
  ProducerTarget,
  RateLimitedProducerDeps,
  RateLimitedProducerState,
  ProducerLimitsInForce,
  RateLimitedProducerEvents,
  ProducerThrottledEvent,
  ProducerBufferFullEvent,
  ProducerBufferDrainedEvent,
  ProducerSendFailedEvent,
  ProducerErrorEvent,
  ProducerSendOptions,
  ProducerFlushOptions,
  ProducerCloseOptions,
} from './producer/rate-limited-producer.js';
export type {
  RateLimitedProducerOptions,
  ProducerLimits,
  ProducerLagSignal,
} from './producer/options.js';
export {
  ERROR_CODES,
  BackpressureError,
  ConfigError,
  HandlerTimeoutError,
  NonRetriableError,
  CircuitOpenError,
  DlqPublishError,
  MessageShedError,
  ProducerBufferFullError,
  ProducerStoppedError,
  ProducerClosedError,
  ProducerDrainTimeoutError,
  isBackpressureError,
} from './errors.js';
export type { ErrorCode } from './errors.js';
