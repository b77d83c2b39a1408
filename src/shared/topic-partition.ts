export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/** A map key for a topic-partition. Topic names cannot contain '|' (Kafka allows [a-zA-Z0-9._-]). */
export function tpKey(topic: string, partition: number): string {
  return `${topic}|${partition}`;
}

export function parseTpKey(key: string): TopicPartition {
  const at = key.lastIndexOf('|');
  return { topic: key.slice(0, at), partition: Number(key.slice(at + 1)) };
}

/** Groups topic-partitions the way KafkaJS's pause/resume/commit calls want them. */
export function byTopic(
  partitions: Iterable<TopicPartition>,
): { topic: string; partitions: number[] }[] {
  const grouped = new Map<string, number[]>();
  for (const { topic, partition } of partitions) {
    const list = grouped.get(topic);
    if (list) list.push(partition);
    else grouped.set(topic, [partition]);
  }
  return [...grouped].map(([topic, list]) => ({ topic, partitions: list.sort((a, b) => a - b) }));
}

/** Orders partitions by topic, then partition number. */
export function byTopicPartition(a: TopicPartition, b: TopicPartition): number {
  return a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1;
}
