"""Drives hop's Bitly v4 API (--compat-bitly) with two published clients
nobody here wrote: `bitly-api-sdk` 1.0.0 (generated from Bitly's own API
collection; its host set through its Configuration, no file of it
patched) and `pyshorteners` 1.0.1 (its `api_url` set to hop). The SDK's
request models demand every field, so partial bodies go as dicts, which
it sends as they are. Prints one JSON object of what each call gave;
tests/api/compat.rs asserts on it.

usage: bitly_client.py BASE_URL API_KEY
"""
import json
import sys
import time

import pyshorteners
import requests
from bitlyapi.bitlyapi_client import BitlyapiClient
from bitlyapi.configuration import Configuration, Environment, Server
from bitlyapi.exceptions.api_exception import APIException
from bitlyapi.http.auth.o_auth_2 import BearerAuthCredentials
from bitlyapi.http.http_call_back import HttpCallBack
from bitlyapi.models.create_a_bitlink_request import CreateABitlinkRequest
from bitlyapi.models.shorten_a_link_request import ShortenALinkRequest

base, token = sys.argv[1:3]
ACCEPT = "application/json"
Configuration.environments = {Environment.PRODUCTION: {Server.SERVER_1: base + "/v4"}}


class Recorder(HttpCallBack):
    """Keeps the last response, for its status and raw body."""
    def on_before_request(self, request):
        pass

    def on_after_response(self, response):
        self.resp = response


rec = Recorder()


def client(key):
    return BitlyapiClient(bearer_auth_credentials=BearerAuthCredentials(access_token=key),
                          environment=Environment.PRODUCTION, http_call_back=rec, timeout=10)


def last():
    return [rec.resp.status_code, json.loads(rec.resp.text)]


def attempt(f):
    try:
        f()
        return last()
    except APIException as e:
        return [e.response_code, json.loads(rec.resp.text), type(e).__name__]


sdk = client(token)
out = {}
sdk.misc.shorten_a_link(ACCEPT, ShortenALinkRequest(
    group_guid="Bhop", domain="bit.ly", long_url="https://example.com/shorten-me"))
out["shorten"] = last()
sdk.misc.shorten_a_link(ACCEPT, ShortenALinkRequest(
    group_guid="Bhop", domain="bit.ly", long_url="https://example.com/shorten-me"))
out["shorten_again"] = last()
made = sdk.bitlinks.create_a_bitlink(ACCEPT, {
    "long_url": "https://example.com/from-bitly", "domain": "bit.ly", "title": "From the SDK",
    "tags": ["t1"], "keyword": "bitly-one"})
out["created"] = last()
sdk.bitlinks.create_a_bitlink(ACCEPT, CreateABitlinkRequest(
    domain="bit.ly", title="plain", group_guid="Bhop", tags=[], deeplinks=[],
    long_url="https://example.com/plain"))
out["created_model"] = last()
out["taken"] = attempt(lambda: sdk.bitlinks.create_a_bitlink(
    ACCEPT, {"long_url": "https://example.com/x", "keyword": "bitly-one"}))
out["bad_url"] = attempt(lambda: sdk.misc.shorten_a_link(ACCEPT, {"long_url": "not a url"}))
bitlink = made.id
sdk.bitlink.retrieve_a_bitlink(bitlink, ACCEPT)
out["read"] = last()

# Follow it as two browsers and a crawler (not counted).
for ua in ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0.0.0 Safari/537.36",
           "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
           "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"]:
    r = requests.get(made.link.replace("http://hop.test", base), headers={"User-Agent": ua},
                     allow_redirects=False)
    out.setdefault("follow", []).append([r.status_code, r.headers.get("location")])
deadline = time.time() + 15
while time.time() < deadline:
    # (The SDK's generated model for this answer reads none of its
    # fields: the raw body is what counts.)
    sdk.clicks.get_a_clicks_summary_for_a_bitlink("day", -1, None, bitlink, ACCEPT)
    if last()[1].get("total_clicks", 0) >= 2:
        break
    time.sleep(0.2)
out["summary"] = last()
sdk.clicks.get_clicks_for_a_bitlink("day", -1, None, bitlink, ACCEPT)
out["clicks"] = last()
sdk.clicks.get_clicks_for_a_bitlink("hour", 3, None, bitlink, ACCEPT)
out["clicks_hours"] = last()
sdk.clicks.get_clicks_for_a_bitlink("month", 2, None, bitlink, ACCEPT)
out["clicks_months"] = last()
out["bad_unit"] = attempt(lambda: sdk.clicks.get_clicks_for_a_bitlink("fortnight", -1, None, bitlink, ACCEPT))

sdk.bitlink.update_a_bitlink(bitlink, ACCEPT, {"title": "Patched", "tags": ["t1", "t2"]})
out["patched"] = last()
out["unknown"] = attempt(lambda: sdk.bitlink.retrieve_a_bitlink(bitlink + "-nope", ACCEPT))
out["wrong_key"] = attempt(lambda: client("hop_not_a_real_key").bitlink.retrieve_a_bitlink(bitlink, ACCEPT))

# pyshorteners: shorten, expand, and the total it reads from /clicks (the
# bitlink unencoded in the path).
short = pyshorteners.Shortener(api_key=token, api_url=base + "/v4", timeout=10).bitly
out["py_short"] = short.short("https://example.com/from-bitly")
out["py_expand"] = short.expand(out["py_short"])
out["py_total"] = short.total_clicks(made.link)
print(json.dumps(out))
