// The seed's JavaScript / Node example. The CA comes from NODE_EXTRA_CA_CERTS.
const base = process.env.NUVLYX_BASE_URL ?? "https://api.nuvlyx.com";
const r = await fetch(`${base}/api/v1/external/orders`, {
  headers: { Authorization: `Bearer ${process.env.NUVLYX_TOKEN}` }
});
const orders = await r.json();
console.log(r.status, JSON.stringify(orders));
