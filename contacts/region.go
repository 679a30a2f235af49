package contacts

import "github.com/nyaruka/phonenumbers"

// RegionOf returns the ISO 3166-1 alpha-2 region a phone number in E.164 belongs
// to ("+8613800138000" → "CN", "+12015550123" → "US"; within a shared country
// code, the region the number's own prefix names, such as "CA" for a Canadian area
// code). It returns "" when e164 does not parse or has no single region (a
// non-geographic number such as +800…); callers then fall back to a default region,
// typically the declaration's phone_region.
//
// A subject's own number tells how they write the numbers in their address book:
// numbers without a country code are read as dialled from that region.
func RegionOf(e164 string) string {
	if len(e164) < 2 || e164[0] != '+' || len(e164) > maxPhoneBytes {
		return ""
	}
	num, err := phonenumbers.Parse(e164, "ZZ")
	if err != nil {
		return ""
	}
	region := phonenumbers.GetRegionCodeForNumber(num)
	if !ValidRegion(region) {
		return ""
	}
	return region
}
