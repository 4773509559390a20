// send.js CLIENT URL WRITE_KEY PREFIX: the real Segment or RudderStack
// Node client, configured as a shop would point it at tailor (its host and
// write key, nothing else), sends what a shop's backend sends: identify with
// traits, a page, the e-commerce spec v2 events, an event tailor has no type
// for, and an alias; in batches, as the clients do.  Ids are PREFIX-ed so that
// the two clients' data can be told apart.  Prints {"ok": true} once the
// client says everything was delivered.
'use strict';

const [client, url, writeKey, prefix] = process.argv.slice(2);
const user = `${prefix}-user`, anon = `${prefix}-anon`, other = `${prefix}-anon2`;
const p = (id) => `${prefix}-${id}`;

// The calls, in the clients' common vocabulary.
const calls = [
  ['identify', { userId: user, anonymousId: anon,
    traits: { email: `${prefix}@example.com`, phone: '+49 30 1234567', country: 'DE', plan: 'gold' } }],
  ['page', { anonymousId: anon, userId: user, name: 'Home', properties: { path: '/' } }],
  ['track', { userId: user, anonymousId: anon, event: 'Products Searched', properties: { query: 'wool hat' } }],
  ['track', { userId: user, anonymousId: anon, event: 'Product List Viewed',
    properties: { list_id: 'hats', products: [{ product_id: p('hat'), price: 24 }, { product_id: p('scarf'), price: 30 }] } }],
  ['track', { userId: user, anonymousId: anon, event: 'Product Clicked', properties: { product_id: p('hat') } }],
  ['track', { userId: user, anonymousId: anon, event: 'Product Viewed', properties: { product_id: p('hat'), price: 24, name: 'Wool Hat' } }],
  ['track', { userId: user, anonymousId: anon, event: 'Product Viewed', properties: { product_id: p('gloves'), price: 35 } }],
  ['track', { userId: user, anonymousId: anon, event: 'Product Added to Wishlist', properties: { product_id: p('gloves') } }],
  ['track', { userId: user, anonymousId: anon, event: 'Product Added', properties: { product_id: p('hat'), price: 24, quantity: 1 } }],
  ['track', { userId: user, anonymousId: anon, event: 'Product Added', properties: { product_id: p('gloves'), price: 35, quantity: 1 } }],
  ['track', { userId: user, anonymousId: anon, event: 'Product Removed', properties: { product_id: p('gloves') } }],
  ['track', { userId: user, anonymousId: anon, event: 'Cart Viewed', properties: { products: [{ product_id: p('hat') }] } }],
  ['track', { userId: user, anonymousId: anon, event: 'Coupon Applied', properties: { coupon_id: 'WELCOME10' } }],
  ['track', { userId: user, anonymousId: anon, event: 'Promotion Viewed', properties: { promotion_id: 'winter' } }],
  ['track', { userId: user, anonymousId: anon, event: 'Promotion Clicked', properties: { promotion_id: 'winter' } }],
  ['track', { userId: user, anonymousId: anon, event: 'Checkout Started', properties: { order_id: p('o1'), value: 24 } }],
  ['track', { userId: user, anonymousId: anon, event: 'Order Completed',
    properties: { order_id: p('o1'), total: 24, currency: 'EUR', products: [{ product_id: p('hat'), price: 24, quantity: 1 }] } }],
  ['track', { userId: user, anonymousId: anon, event: 'Order Refunded', properties: { order_id: p('o1') } }],
  ['track', { userId: user, anonymousId: anon, event: 'Newsletter Subscribed', properties: { list: 'weekly' } }],
  // Another visitor views the hat and the scarf: "also viewed" for the test.
  ['track', { anonymousId: other, event: 'Product Viewed', properties: { product_id: p('hat') } }],
  ['track', { anonymousId: other, event: 'Product Viewed', properties: { product_id: p('scarf') } }],
  ['alias', { userId: user, previousId: `${prefix}-old-device` }],
];

function fail(msg) {
  console.error(`send.js ${client}: ${msg}`);
  process.exit(1);
}

async function segment() {
  const { Analytics } = require('@segment/analytics-node');
  // The two lines a shop changes: its write key, and the host.
  const analytics = new Analytics({ writeKey, host: url, flushAt: 8, flushInterval: 200,
                                    maxRetries: 2 });
  const errors = [];
  analytics.on('error', (e) => errors.push(String(e && (e.reason || e.message || e))));
  for (const [method, args] of calls) analytics[method](args);
  await analytics.closeAndFlush({ timeout: 20000 });
  if (errors.length) fail(errors.join('; '));
}

async function rudderstack() {
  const Analytics = require('@rudderstack/rudder-sdk-node');
  // The two lines a shop changes: its write key, and the data plane URL.
  const client = new Analytics(writeKey, { dataPlaneUrl: url, flushAt: 8, flushInterval: 200,
                                           retryCount: 1,
                                           errorHandler: (e) => fail(String(e)) });
  // Every call at once, so that the client batches them; each callback
  // says its batch was delivered.
  const sent = calls.map(([method, args]) => new Promise((resolve, reject) =>
    client[method](args, (err) => (err ? reject(err) : resolve()))));
  await Promise.all(sent);
}

(client === 'segment' ? segment() : client === 'rudderstack' ? rudderstack() : fail('which client?'))
  .then(() => console.log(JSON.stringify({ ok: true })))
  .catch((e) => fail(e && e.stack ? e.stack : String(e)));
