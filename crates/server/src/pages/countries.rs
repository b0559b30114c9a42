//! The country list of the phone form: each country's ISO 3166 code and English name (from
//! `countries.tsv`, taken from Debian's iso-codes and sorted by name) with its calling code from
//! libphonenumber's metadata (the `phonenumber` crate, which also checks the numbers). A country
//! the metadata does not know is left out: its numbers could not be checked anyway.

use std::sync::LazyLock;

use axum::http::HeaderMap;

/// One `<option>` of the country selector.
#[derive(Debug)]
pub struct Country {
    /// ISO 3166 alpha-2, the value the form sends.
    pub code: &'static str,
    pub name: &'static str,
    pub calling_code: u16,
}

static COUNTRIES: LazyLock<Vec<Country>> = LazyLock::new(|| {
    include_str!("countries.tsv")
        .lines()
        .filter_map(|line| {
            let (code, name) = line.split_once('\t')?;
            let metadata = phonenumber::metadata::DATABASE.by_id(code)?;
            Some(Country {
                code,
                name,
                calling_code: metadata.country_code(),
            })
        })
        .collect()
});

/// Every country, by name.
pub fn countries() -> &'static [Country] {
    &COUNTRIES
}

/// The country code if `code` names a listed country (any case).
pub fn known_country(code: &str) -> Option<&'static str> {
    countries()
        .iter()
        .find(|country| country.code.eq_ignore_ascii_case(code))
        .map(|country| country.code)
}

/// The country of the browser's first language with a region (`en-GB` → `GB`), to preselect.
pub fn country_from_languages(headers: &HeaderMap) -> Option<&'static str> {
    let languages = headers
        .get(axum::http::header::ACCEPT_LANGUAGE)?
        .to_str()
        .ok()?;
    languages
        .split(',')
        .filter_map(|item| item.split(';').next())
        .filter_map(|tag| tag.trim().split('-').nth(1))
        .find_map(|region| (region.len() == 2).then(|| known_country(region)).flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_carry_their_calling_codes() {
        let find = |code: &str| countries().iter().find(|country| country.code == code);
        let uk = find("GB").unwrap();
        assert_eq!(
            (uk.name, uk.calling_code),
            ("United Kingdom", 44),
            "United Kingdom (+44)"
        );
        assert_eq!(find("US").unwrap().calling_code, 1);
        assert_eq!(find("DE").unwrap().calling_code, 49);
        assert!(countries().len() > 230, "{}", countries().len());
    }

    #[test]
    fn every_region_of_the_metadata_has_a_name() {
        for metadata in phonenumber::metadata::DATABASE.iter() {
            let id = metadata.id();
            if id.len() == 2 {
                assert!(known_country(id).is_some(), "{id} has no name");
            }
        }
    }

    #[test]
    fn the_browser_language_preselects_a_country() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::ACCEPT_LANGUAGE,
            "fr, en-gb;q=0.8, en;q=0.5".parse().unwrap(),
        );
        assert_eq!(country_from_languages(&headers), Some("GB"));
        headers.insert(
            axum::http::header::ACCEPT_LANGUAGE,
            "en, zz-QQ".parse().unwrap(),
        );
        assert_eq!(country_from_languages(&headers), None);
    }
}
