package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMQTT(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		want    MQTT
		wantErr string // in the error; "" for none
	}{
		{name: "none: the embedded broker on its default", toml: ""},
		{name: "embedded broker elsewhere", toml: "[mqtt]\nlisten = \"0.0.0.0:1884\"\nadvertise = \"mqtt://fleet.lan:1884\"\n",
			want: MQTT{Listen: "0.0.0.0:1884", Advertise: "mqtt://fleet.lan:1884"}},
		{name: "no broker", toml: "[mqtt]\nlisten = \"off\"\n", want: MQTT{Listen: "off"}},
		{name: "external broker", toml: "[mqtt]\nbroker = \"mqtts://mqtt.example.org:8883\"\nusername = \"srv\"\npassword_file = \"/p\"\nca = \"/ca.pem\"\n",
			want: MQTT{Broker: "mqtts://mqtt.example.org:8883", Username: "srv", PasswordFile: "/p", CA: "/ca.pem"}},
		{name: "misspelt key", toml: "[mqtt]\nbrokr = \"x\"\n", wantErr: "unknown key mqtt.brokr"},
		{name: "bad listen", toml: "[mqtt]\nlisten = \"1883\"\n", wantErr: "mqtt.listen"},
		{name: "http broker", toml: "[mqtt]\nbroker = \"http://u:secret@x:1883\"\n", wantErr: "mqtt.broker"},
		{name: "broker without host", toml: "[mqtt]\nbroker = \"mqtt://\"\n", wantErr: "no host"},
		{name: "bad advertise", toml: "[mqtt]\nadvertise = \"fleet.lan:1883\"\n", wantErr: "mqtt.advertise"},
		{name: "username without broker", toml: "[mqtt]\nusername = \"srv\"\npassword_file = \"/p\"\n", wantErr: "give mqtt.broker"},
		{name: "broker and listen", toml: "[mqtt]\nbroker = \"mqtt://x\"\nlisten = \"127.0.0.1:1883\"\n", wantErr: "both given"},
		{name: "username without password", toml: "[mqtt]\nbroker = \"mqtt://x\"\nusername = \"srv\"\n", wantErr: "go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "server.toml")
			if err := os.WriteFile(path, []byte(tt.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if err == nil {
				err = c.Check()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("the error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.MQTT != tt.want {
				t.Errorf("MQTT = %+v, want %+v", c.MQTT, tt.want)
			}
		})
	}
}
