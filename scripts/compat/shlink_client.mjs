// Drives hop's Shlink API (--compat-shlink) with Shlink's own JavaScript
// SDK, @shlinkio/shlink-js-sdk (installed by scripts/compat-clients.sh in
// target/compat-node), which nobody here wrote. Prints one JSON object of
// what each call gave; tests/api/compat.rs asserts on it.
//
// usage: node shlink_client.mjs BASE_URL API_KEY SDK_DIR
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [base, apiKey, sdkDir] = process.argv.slice(2);
const dist = join(sdkDir, "node_modules/@shlinkio/shlink-js-sdk/dist");
const { ShlinkApiClient } = await import(pathToFileURL(join(dist, "index.js")));
const { NodeHttpClient } = await import(pathToFileURL(join(dist, "node.js")));

const http = new NodeHttpClient();
const client = new ShlinkApiClient(http, { baseUrl: base, apiKey });
const out = {};

// What a call gave, or the problem it was refused with.
const attempt = async (f) => {
  try {
    return { ok: await f() };
  } catch (e) {
    return { error: e };
  }
};

out.health = await client.health();
const validUntil = new Date(Date.now() + 30 * 86400e3).toISOString().replace(/\.\d+Z$/, "+00:00");
out.created = await client.createShortUrl({
  longUrl: "https://example.com/from-shlink?a=1",
  customSlug: "sdk-one",
  tags: ["news", "sdk"],
  title: "From the SDK",
  validUntil,
  maxVisits: 100,
});
out.validUntil = validUntil;
out.found = await client.createShortUrl({
  longUrl: "https://example.com/from-shlink?a=1",
  findIfExists: true,
});
out.taken = await attempt(() =>
  client.createShortUrl({ longUrl: "https://example.com/else", customSlug: "sdk-one" }),
);
out.bad_url = await attempt(() => client.createShortUrl({ longUrl: "not a url" }));
out.future_start = await attempt(() =>
  client.createShortUrl({ longUrl: "https://example.com/later", validSince: "2999-01-01T00:00:00+00:00" }),
);
const two = await client.createShortUrl({ longUrl: "https://example.com/two", tags: ["other"] });
out.random_code = two.shortCode;
out.read = await client.getShortUrl({ shortCode: "sdk-one" });

// Follow the short link as two browsers and a crawler would.
const agents = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];
out.follow = [];
for (const ua of agents) {
  const r = await fetch(`${base}/sdk-one`, {
    redirect: "manual",
    headers: { "User-Agent": ua, Referer: "https://news.example.org/story" },
  });
  out.follow.push([r.status, r.headers.get("location")]);
}
const deadline = Date.now() + 15000;
let counted;
do {
  counted = await client.getShortUrl({ shortCode: "sdk-one" });
  if (counted.visitsSummary.total >= 3) break;
  await new Promise((r) => setTimeout(r, 200));
} while (Date.now() < deadline);
out.counted = counted.visitsSummary;
out.visits = await client.getShortUrlVisits({ shortCode: "sdk-one" });
out.human_visits = await client.getShortUrlVisits({ shortCode: "sdk-one" }, { excludeBots: true });
out.visits_page = await client.getShortUrlVisits({ shortCode: "sdk-one" }, { page: 2, itemsPerPage: 2 });

const codes = (list) => list.data.map((s) => s.shortCode);
out.list_all = await client.listShortUrls();
out.list_tag = codes(await client.listShortUrls({ tags: ["news"] }));
out.list_search = codes(await client.listShortUrls({ searchTerm: "two" }));
out.list_by_visits = await client.listShortUrls({
  itemsPerPage: 1,
  page: "1",
  orderBy: { field: "visits", dir: "DESC" },
});
out.list_bad_order = await attempt(() => client.listShortUrls({ orderBy: { field: "colour", dir: "ASC" } }));

out.edited = await client.updateShortUrl(
  { shortCode: "sdk-one" },
  { longUrl: "https://example.com/edited", title: "Edited", maxVisits: null },
);

out.tags = await client.listTags();
out.tag_stats = await client.tagsStats();
out.overview = await client.getVisitsOverview();
out.domains = await client.listDomains();
out.mercure = await attempt(() => client.mercureInfo());

const stranger = new ShlinkApiClient(http, { baseUrl: base, apiKey: "hop_not_a_real_key" });
out.wrong_key = await attempt(() => stranger.listShortUrls());

out.deleted = await client.deleteShortUrl({ shortCode: two.shortCode });
out.gone = await attempt(() => client.getShortUrl({ shortCode: two.shortCode }));
out.missing_route = await attempt(() => http.jsonRequest(`${base}/rest/v3/no-such-thing`, { headers: { "X-Api-Key": apiKey } }));

// Last, so that this click is not in the counts read above.
const after = await fetch(`${base}/sdk-one`, { redirect: "manual" });
out.follow_edited = [after.status, after.headers.get("location")];

process.stdout.write(JSON.stringify(out));
