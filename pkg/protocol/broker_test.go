package protocol

import (
	"errors"
	"testing"
)

func TestBrokerTLS(t *testing.T) {
	for _, c := range []struct {
		scheme string
		tls    bool
		err    error
	}{{"mqtt", false, nil}, {"tcp", false, nil}, {"mqtts", true, nil}, {"ssl", true, nil}, {"tls", true, nil},
		{"ws", false, ErrBrokerScheme}, {"MQTT", false, ErrBrokerScheme}, {"", false, ErrBrokerScheme}} {
		got, err := BrokerTLS(c.scheme)
		if got != c.tls || !errors.Is(err, c.err) {
			t.Errorf("BrokerTLS(%q) = %v, %v; want %v, %v", c.scheme, got, err, c.tls, c.err)
		}
	}
}
