/** The library: produce messages from Node.js programs. */
export { enqueue, enqueueMany, newMessageId, EnqueueError, type MessageInput, type EnqueueOptions } from './producer/enqueue.js';
export { SpoolError, ERROR_CODES, type SpoolErrorCode } from './errors.js';
export { validateMessage, type Message } from './delivery/message.js';
