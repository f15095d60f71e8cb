package server

import (
	"context"
	"fmt"
	"net/url"

	"github.com/edgewarden/edgewarden/controller/broker"
	"github.com/edgewarden/edgewarden/controller/mqttlink"
	"github.com/edgewarden/edgewarden/controller/pki"
)

// transport is how documents reach devices: the embedded broker, or a
// client link to an external broker.
type transport interface {
	// Publish sends payload on topic at QoS 1 and returns once the broker
	// has it. An empty retained payload clears the topic's retained message.
	Publish(ctx context.Context, topic string, payload []byte, retain bool) error
	// DisconnectDevice drops a device's connection, if the transport can.
	DisconnectDevice(id string) bool
	Close() error
}

var (
	_ transport = (*broker.Broker)(nil)
	_ transport = externalLink{}
)

// externalLink adapts mqttlink.Link. An external broker cannot be told to
// drop a device; its certificate identity and ACL still confine it to its
// own topics, and the controller ignores what a deleted device sends.
type externalLink struct{ *mqttlink.Link }

func (externalLink) DisconnectDevice(string) bool { return false }

// startTransport starts the embedded broker, or connects to the external
// one, and returns the broker URL agents should use.
func (s *Server) startTransport(ctx context.Context) (string, error) {
	if s.opts.BrokerURL != "" {
		u, err := url.Parse(s.opts.BrokerURL)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("--broker-url %q: want a URL such as tls://mqtt.plant.example:8883", s.opts.BrokerURL)
		}
		cfg := s.authority.ClientConfig()
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		link, err := mqttlink.New(mqttlink.Options{
			BrokerURL: s.opts.BrokerURL,
			TLS:       cfg,
			ClientID:  pki.ControllerIdentity,
			Ingest:    s.ingest,
			OnConnect: s.brokerUp,
			Logger:    s.log,
		})
		if err != nil {
			return "", err
		}
		if err := link.Start(ctx); err != nil {
			link.Close()
			return "", fmt.Errorf("connect to the external broker %s: %w (check that it runs, trusts the controller CA and maps certificate identities as in packaging/mosquitto)", s.opts.BrokerURL, err)
		}
		s.transport = externalLink{link}
		return s.opts.BrokerURL, nil
	}
	b, err := s.startEmbedded(s.opts.MQTTAddr)
	if err != nil {
		return "", err
	}
	s.transport = b
	return "tls://" + b.Addr().String(), nil
}

// startEmbedded starts the embedded broker on addr. A new broker retains
// nothing: like a reconnect to an external broker, it makes the reconcile
// loop forget the published state and publish every stored document again
// (brokerUp), so a broker that starts again, in this process or with it,
// gets every device's document back without the controller recompiling.
func (s *Server) startEmbedded(addr string) (*broker.Broker, error) {
	b, err := broker.New(broker.Options{
		Addr:        addr,
		TLS:         s.authority.MQTTServerConfig(),
		AllowDevice: s.allowDevice,
		Ingest:      s.ingest,
		Logger:      s.log,
	})
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		b.Close() // stop what New and a part-way Start set going
		return nil, fmt.Errorf("start the MQTT broker on %s: %w (use --mqtt to pick another address)", addr, err)
	}
	s.brokerUp()
	return b, nil
}
