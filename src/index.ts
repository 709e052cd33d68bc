/** The library: produce messages from Node.js programs. */
export { enqueue, enqueueMany, newMessageId, EnqueueError, type MessageInput, type EnqueueOptions } from './enqueue.js';
export { validateMessage, type Message } from './message.js';
