package warm
import (
	"testing"
	_ "modernc.org/sqlite"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "github.com/urfave/cli/v2"
	_ "github.com/anishathalye/porcupine"
	_ "github.com/chzyer/readline"
)
func TestX(t *testing.T){}
