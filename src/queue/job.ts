/** A claimed message in the active set, waiting for a slot or in flight. */
import type { DeliveryPolicy } from '../service/config.js';
import type { Message } from '../delivery/message.js';
import type { Claimed } from '../spool/claim.js';
import type { Destination } from './destinations.js';

export interface Job {
  claimed: Claimed;
  destination: Destination;
  policy: DeliveryPolicy;
  /**
   * Since when the message has been waiting to be sent: when the producer
   * wrote the file (its mtime), or its scheduled time if it had one, so the
   * delivery latency of a scheduled message does not count its schedule.
   */
  dueSince: number;
  /** The message's URL (for bounce records and notices), kept when the message is not. */
  url: string;
  /** The file's size: what keeping its parsed form costs. */
  size: number;
  /** Parsed at claim; null when the active set's bytes were spent: read again at send time. */
  message: Message | null;
  /** Sent as the one probe of a destination coming out of its cool-off. */
  probe: boolean;
  /** The window round it was sent in (see window.ts). */
  round: number;
}
