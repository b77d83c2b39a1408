export { BackpressureConsumer } from './consumer/backpressure-consumer.js';
export type {
  ConsumerClient,
  ClientRun,
  ClientHooks,
  FetchedBatch,
  RawMessage,
  CommitOffset,
  CommittedOffset,
} from './consumer/kafka/port.js';
export type { ProgressAdmin } from './consumer/kafka/kafkajs.js';
export type {
  ConsumerState,
  PartitionSnapshot,
  CloseOptions,
  StartOptions,
  WaitOptions,
} from './consumer/backpressure-consumer.js';
export type {
  BackpressureConsumerOptions,
  InboundMessage,
  HandlerContext,
  MessageHandler,
  BatchHandler,
  BatchResult,
  BatchFailure,
  BatchOptions,
  Deserializer,
  RecordSender,
  RetryOptions,
  DeadLetterOptions,
  CircuitBreakerOptions,
  LatencyOptions,
  AdaptiveConcurrencyOptions,
  OrderingMode,
} from './consumer/options.js';
export type { ShedOptions, ShedAction } from './consumer/failure/shedding.js';
export type { DownstreamLagOptions } from './consumer/flow/downstream-lag.js';
export { registerMetrics, DEFAULT_HANDLER_DURATION_BUCKETS } from './metrics/metrics.js';
export type {
  MetricsRegistry,
  MetricsSources,
  MetricsRegistration,
  MeasuredConsumer,
  PromClient,
  RegisterMetricsOptions,
} from './metrics/metrics.js';
export type * from './consumer/events.js';
export type { PauseReason } from './consumer/flow/controller.js';
export type { TopicPartition } from './shared/topic-partition.js';
export type { CircuitState } from './consumer/failure/breaker.js';
export type { Logger } from './shared/logger.js';
export type { Clock } from './shared/clock.js';
export type { LagStatus } from './lag/lag-status.js';
export { DLQ_HEADERS, DLQ_HEADER_PREFIX } from './consumer/failure/dead-letter-record.js';
export { LagMonitor } from './lag/lag-monitor.js';
export type {
  LagMonitorOptions,
  LagMonitorCallOptions,
  LagAdmin,
  LagMonitorEvents,
  LagMonitorState,
  LagSnapshot,
  PartitionLag,
  GroupLag,
  LagHistory,
  PartitionHistory,
  LagStatusEvent,
  LagRuleEvent,
  LagRecommendationEvent,
  LagErrorEvent,
} from './lag/lag-monitor.js';
export type { LagSample } from './lag/samples.js';
export type { AdminCall } from './lag/admin-poller.js';
export type { LagRules } from './lag/rules.js';
export type { LagThresholds } from './lag/thresholds.js';
export type { LagRecommendation } from './lag/recommend.js';
export type { PartitionAnalysis, GroupAnalysis } from './lag/analysis.js';
export type { TimeLag, TimeLagMethod } from './lag/time-lag.js';
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
export { TRACING_CHANNELS } from './shared/tracing.js';
export type {
  HandleTraceContext,
  CommitTraceContext,
  DeadLetterTraceContext,
  ProduceTraceContext,
} from './shared/tracing.js';
