import type { Message, ProducerRecord } from 'kafkajs';
import { ConfigError } from '../errors.js';

/**
 * Checks what KafkaJS would reject late (failing a whole batch, and with it
 * other callers' messages) and returns each message's size in bytes: key,
 * value, header names and header values.
 */
export function validateRecord(record: unknown): number[] {
  if (typeof record !== 'object' || record === null) {
    throw new ConfigError('record', 'a ProducerRecord ({ topic, messages })', record);
  }
  const { topic, messages } = record as Partial<ProducerRecord>;
  if (typeof topic !== 'string' || topic === '')
    throw new ConfigError('record.topic', 'a non-empty string', topic);
  if (!Array.isArray(messages))
    throw new ConfigError('record.messages', 'an array of messages', messages);
  return messages.map((message: unknown, i) => {
    const path = `record.messages[${i}]`;
    if (typeof message !== 'object' || message === null) {
      throw new ConfigError(path, 'a message object ({ key?, value, headers? })', message);
    }
    const { key, value, headers } = message as Partial<Message>;
    if (!isBytes(value) && value !== null) {
      throw new ConfigError(`${path}.value`, 'a Buffer, a string or null', value);
    }
    if (!isBytes(key) && key !== null && key !== undefined) {
      throw new ConfigError(`${path}.key`, 'a Buffer, a string, null or undefined', key);
    }
    let size = sizeOf(key) + sizeOf(value);
    if (headers !== undefined) {
      if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
        throw new ConfigError(`${path}.headers`, 'an object of header values', headers);
      }
      for (const [name, header] of Object.entries(headers)) {
        if (header === undefined) continue;
        const values: unknown[] = Array.isArray(header) ? header : [header];
        for (const v of values) {
          if (!isBytes(v)) {
            throw new ConfigError(
              `${path}.headers.${name}`,
              'a Buffer, a string, or an array of them',
              header,
            );
          }
          size += sizeOf(v);
        }
        size += Buffer.byteLength(name);
      }
    }
    return size;
  });
}

function isBytes(value: unknown): value is string | Buffer {
  return typeof value === 'string' || Buffer.isBuffer(value);
}

function sizeOf(value: string | Buffer | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'string' ? Buffer.byteLength(value) : value.length;
}
