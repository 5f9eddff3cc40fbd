//! User agent → browser, OS, device type and bot flag, with woothee (rules
//! embedded in the crate, ~2 µs a parse) and a cache by UA string, since real
//! traffic repeats a few thousand user agents.

use std::sync::Arc;

use crate::domain::{DeviceType, MAX_ATTR_LEN};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgentInfo {
    pub browser: String,
    pub os: String,
    pub device: DeviceType,
    pub bot: bool,
}

/// Substrings (lower case) of user agents that woothee misses but that are
/// automated clients: HTTP libraries, headless browsers, link previewers.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "headless",
    "curl/",
    "wget/",
    "python-",
    "go-http-client",
    "java/",
    "okhttp",
    "httpclient",
    "libwww",
    "scrapy",
    "axios/",
    "node-fetch",
    "phantomjs",
    "lighthouse",
    "facebookexternalhit",
    "preview",
    "monitor",
    "uptime",
    "http_request",
    "reqwest",
    "aiohttp",
    "httpx",
    "whatsapp/",
    "slack-imgproxy",
    "mastodon/",
    "embedly",
    "iframely",
    "vkshare",
];

/// Substrings (lower case) of the user agents of link preview bots: the
/// chat apps and social sites that fetch a shared link to show a card of it
/// (iMessage sends `facebookexternalhit` and `Twitterbot`; Teams and Skype
/// `SkypeUriPreview`). Every one is also a [`BOT_MARKERS`] bot.
const PREVIEWER_MARKERS: &[&str] = &[
    "slackbot",
    "slack-imgproxy",
    "twitterbot",
    "facebookexternalhit",
    "facebot",
    "linkedinbot",
    "discordbot",
    "whatsapp/",
    "telegrambot",
    "skypeuripreview",
    "mastodon/",
    "pinterestbot",
    "redditbot",
    "embedly",
    "iframely",
    "vkshare",
];

/// Whether `ua` is a link preview bot's (by the user agent markers of
/// the chat apps and social sites that fetch previews).
pub fn is_link_previewer(ua: &str) -> bool {
    let lower = ua.to_ascii_lowercase();
    PREVIEWER_MARKERS.iter().any(|m| lower.contains(m))
}

pub struct UserAgentParser {
    parser: woothee::parser::Parser,
    cache: moka::sync::Cache<String, Arc<UserAgentInfo>>,
}

impl Default for UserAgentParser {
    fn default() -> Self {
        UserAgentParser {
            parser: woothee::parser::Parser::new(),
            cache: moka::sync::Cache::new(10_000),
        }
    }
}

impl UserAgentParser {
    pub fn parse(&self, ua: Option<&str>) -> Arc<UserAgentInfo> {
        let ua = ua.unwrap_or("").trim();
        if let Some(hit) = self.cache.get(ua) {
            return hit;
        }
        let info = Arc::new(self.classify(ua));
        // Long strings are unlikely to repeat; don't let them fill the cache.
        if ua.len() <= MAX_ATTR_LEN * 2 {
            self.cache.insert(ua.to_owned(), info.clone());
        }
        info
    }

    fn classify(&self, ua: &str) -> UserAgentInfo {
        let lower = ua.to_ascii_lowercase();
        let parsed = self.parser.parse(ua);
        let known = |s: &str| s != woothee::woothee::VALUE_UNKNOWN && !s.is_empty();
        let browser = parsed
            .as_ref()
            .map(|r| r.name)
            .filter(|s| known(s))
            .unwrap_or("Other")
            .to_owned();
        let os = parsed
            .as_ref()
            .map(|r| r.os)
            .filter(|s| known(s))
            .map(|os| match os {
                "iPad" | "iPhone" | "iPod" => "iOS",
                other => other,
            })
            .unwrap_or("Other")
            .to_owned();
        let category = parsed.as_ref().map_or("", |r| r.category);
        let bot = ua.is_empty()
            || category == "crawler"
            || (category == "misc" && parsed.as_ref().is_some_and(|r| r.name == "HTTP Library"))
            || BOT_MARKERS.iter().any(|m| lower.contains(m));
        let device = if bot {
            DeviceType::Bot
        } else {
            match category {
                "pc" => DeviceType::Desktop,
                "smartphone" | "mobilephone" => {
                    // woothee has no tablet class: iPads, and Android devices
                    // that don't say "Mobile", are tablets.
                    if lower.contains("ipad")
                        || lower.contains("tablet")
                        || (lower.contains("android") && !lower.contains("mobile"))
                    {
                        DeviceType::Tablet
                    } else {
                        DeviceType::Mobile
                    }
                }
                _ => DeviceType::Other,
            }
        };
        UserAgentInfo {
            browser,
            os,
            device,
            bot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The user agents chat apps and social sites fetch previews with:
    /// each is a previewer, and a bot (never a human click).
    #[test]
    fn link_previewers_are_known_and_are_bots() {
        let parser = UserAgentParser::default();
        for ua in [
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Slack-ImgProxy (+https://api.slack.com/robots)",
            "Twitterbot/1.0",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "facebookexternalhit/1.1 Facebot Twitterbot/1.0",
            "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "WhatsApp/2.23.20.0 A",
            "TelegramBot (like TwitterBot)",
            "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
            "http.rb/5.1.1 (Mastodon/4.2.1; +https://mastodon.social/)",
        ] {
            assert!(is_link_previewer(ua), "{ua}");
            assert!(parser.parse(Some(ua)).bot, "{ua} is a bot");
        }
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ] {
            assert!(!is_link_previewer(ua), "{ua}");
        }
    }

    #[test]
    fn table() {
        let p = UserAgentParser::default();
        let cases: &[(&str, &str, &str, DeviceType)] = &[
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
                "Firefox",
                "Linux",
                DeviceType::Desktop,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                "Chrome",
                "Windows 10",
                DeviceType::Desktop,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
                "Safari",
                "iOS",
                DeviceType::Mobile,
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
                "Safari",
                "iOS",
                DeviceType::Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                "Chrome",
                "Android",
                DeviceType::Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
                "Chrome",
                "Android",
                DeviceType::Mobile,
            ),
        ];
        for (ua, browser, os, device) in cases {
            let info = p.parse(Some(ua));
            assert_eq!(
                (info.browser.as_str(), info.os.as_str(), info.device),
                (*browser, *os, *device),
                "{ua}"
            );
            assert!(!info.bot, "{ua}");
        }
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "curl/8.5.0",
            "python-requests/2.31",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
            "facebookexternalhit/1.1",
            "",
        ] {
            let info = p.parse(Some(ua));
            assert!(info.bot, "{ua:?} is a bot");
            assert_eq!(info.device, DeviceType::Bot);
        }
        assert!(p.parse(None).bot);
    }
}
