package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/edgewarden/edgewarden/controller/catalog"
	"github.com/edgewarden/edgewarden/controller/store"
)

// ArtifactsDir is the directory, in the data directory, of the
// content-addressed artifact store of pushed apps.
const ArtifactsDir = "artifacts"

// openCatalog opens the app catalogue (checkpoint 1 and the artifact store)
// of a data directory, and collects artifacts no stored version references:
// a push cut off (kill -9) after storing an object but before its version
// was saved leaves one behind.
func openCatalog(ctx context.Context, db *store.DB, dataDir string, log *slog.Logger) (*catalog.Catalog, error) {
	st, err := catalog.OpenStore(filepath.Join(dataDir, ArtifactsDir))
	if err != nil {
		return nil, fmt.Errorf("app catalogue: %w", err)
	}
	c := catalog.New(st)
	refs, err := db.ReferencedArtifacts(ctx)
	if err != nil {
		return nil, err
	}
	removed, err := c.GC(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("app catalogue: collect unreferenced artifacts: %w", err)
	}
	if len(removed) > 0 {
		log.Info("removed unreferenced artifacts", "count", len(removed))
	}
	return c, nil
}
