package server

import (
	"fmt"
	"path/filepath"

	"github.com/edgewarden/edgewarden/controller/catalog"
)

// ArtifactsDir is the directory, in the data directory, of the
// content-addressed artifact store of pushed apps.
const ArtifactsDir = "artifacts"

// openCatalog opens the app catalogue (checkpoint 1 and the artifact store)
// of a data directory.
func openCatalog(dataDir string) (*catalog.Catalog, error) {
	st, err := catalog.OpenStore(filepath.Join(dataDir, ArtifactsDir))
	if err != nil {
		return nil, fmt.Errorf("app catalogue: %w", err)
	}
	return catalog.New(st), nil
}
