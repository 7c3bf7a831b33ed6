package protocol

import (
	"errors"
	"fmt"
)

// ErrBrokerScheme is returned for a broker URL scheme that is none of
// BrokerSchemes.
var ErrBrokerScheme = errors.New("protocol: unknown MQTT broker scheme")

// BrokerSchemes lists the broker URL schemes every part of rpmfleet takes:
// mqtt and mqtts, and paho's tcp, ssl and tls, the same two by other names.
const BrokerSchemes = "mqtt, mqtts (or paho's tcp, ssl, tls)"

// BrokerTLS says whether a broker URL of scheme is dialled over TLS:
// false for mqtt and tcp, true for mqtts, ssl and tls. Any other scheme,
// ws and wss included, is ErrBrokerScheme.
func BrokerTLS(scheme string) (bool, error) {
	switch scheme {
	case "mqtt", "tcp":
		return false, nil
	case "mqtts", "ssl", "tls":
		return true, nil
	default:
		return false, fmt.Errorf("%w %q: want %s", ErrBrokerScheme, scheme, BrokerSchemes)
	}
}
