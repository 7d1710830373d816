package commands

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kiln-serving/kiln/internal/secret"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
)

// encryptionKeyFlag is taken by every role that reads or writes secrets/
// (apiserver, xds, agent). All of them need the same keys; see 'kilnd admin'.
var encryptionKeyFlag = &cli.StringFlag{Name: "encryption-key-file",
	Usage:   "key file sealing TLS secrets in etcd (AES-256-GCM; the first key encrypts, all decrypt); create one with 'kilnd admin encryption-key create'. Without it secrets are stored in plain text",
	EnvVars: []string{"KILN_ENCRYPTION_KEY_FILE"}}

// secretKeys loads the role's key file. Without one it warns: secrets,
// private keys included, then sit in etcd and its backups in the clear.
func secretKeys(path string, log *slog.Logger) (*encryption.Keys, error) {
	if path == "" {
		log.Warn("secrets are stored in etcd in plain text: set --encryption-key-file to encrypt them at rest")
		return nil, nil
	}
	k, err := encryption.Load(path)
	if err != nil {
		return nil, fmt.Errorf("--encryption-key-file: %w", err)
	}
	log.Info("secrets encrypted at rest", "key_file", path, "write_key", k.WriteKey(), "keys", len(k.Names()))
	return k, nil
}

// ensureKeyFile creates a key file with one fresh key at path
// when none exists, so 'kilnd dev' encrypts out of the box.
func ensureKeyFile(path string) error {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	fk, err := encryption.NewFileKey(defaultKeyName(time.Now()))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return encryption.WriteFile(path, encryption.File{Keys: []encryption.FileKey{fk}}, true)
}

// defaultKeyName dates a key, so a file's keys tell their age and a new
// key never collides with an old one.
func defaultKeyName(now time.Time) string { return "key-" + now.UTC().Format("20060102-150405") }

var adminCommand = &cli.Command{
	Name:  "admin",
	Usage: "operator actions: encryption keys for secrets at rest",
	Description: `Rotating the key that encrypts secrets in etcd:

  1. kilnd admin encryption-key add --append FILE   (stage: a new key, decrypt only)
     copy FILE to every apiserver and xds host, restart them
  2. kilnd admin encryption-key promote FILE NAME   (the new key now encrypts)
     copy FILE again, restart apiservers and xds
  3. kilnd admin reencrypt-secrets --encryption-key-file FILE
  4. kilnd admin encryption-key remove FILE OLD     copy FILE, restart

With a single apiserver and xds (or 'kilnd dev'), step 1 may be 'add' without
--append and step 2 skipped: every reader then learns the key at the same time.`,
	Subcommands: []*cli.Command{encryptionKeyCommand, reencryptCommand},
}

var keyNameFlag = &cli.StringFlag{Name: "name", Usage: "name of the new key (default: key-<UTC date-time>)"}

var encryptionKeyCommand = &cli.Command{
	Name:  "encryption-key",
	Usage: "create and edit a secrets encryption key file",
	Subcommands: []*cli.Command{
		{
			Name:      "create",
			Usage:     "write a new key file (mode 0600) holding one random key",
			ArgsUsage: "FILE",
			Flags:     []cli.Flag{keyNameFlag},
			Action: func(c *cli.Context) error {
				path, err := oneArg(c, "FILE")
				if err != nil {
					return err
				}
				fk, err := newKey(c)
				if err != nil {
					return err
				}
				if err := encryption.WriteFile(path, encryption.File{Keys: []encryption.FileKey{fk}}, true); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "created %s with key %q\n", path, fk.Name)
				return nil
			},
		},
		{
			Name:      "add",
			Usage:     "add a random key first in FILE (it encrypts new writes), or last with --append (decrypt only)",
			ArgsUsage: "FILE",
			Flags:     []cli.Flag{keyNameFlag, &cli.BoolFlag{Name: "append", Usage: "add the key last, to stage it on every reader before it encrypts"}},
			Action: func(c *cli.Context) error {
				return editKeyFile(c, func(f *encryption.File) (string, error) {
					fk, err := newKey(c)
					if err != nil {
						return "", err
					}
					if c.Bool("append") {
						f.Keys = append(f.Keys, fk)
						return fmt.Sprintf("added key %q last (decrypt only)", fk.Name), nil
					}
					f.Keys = append([]encryption.FileKey{fk}, f.Keys...)
					return fmt.Sprintf("added key %q first: it encrypts new writes once the apiservers restart; then run 'kilnd admin reencrypt-secrets'", fk.Name), nil
				})
			},
		},
		{
			Name:      "promote",
			Usage:     "move key NAME first in FILE, making it the key that encrypts",
			ArgsUsage: "FILE NAME",
			Action: func(c *cli.Context) error {
				return editKeyFile(c, func(f *encryption.File) (string, error) {
					i, err := keyIndex(c, f)
					if err != nil {
						return "", err
					}
					fk := f.Keys[i]
					f.Keys = append([]encryption.FileKey{fk}, slices.Delete(f.Keys, i, i+1)...)
					return fmt.Sprintf("key %q now encrypts new writes once the apiservers restart; then run 'kilnd admin reencrypt-secrets'", fk.Name), nil
				})
			},
		},
		{
			Name:      "remove",
			Usage:     "remove key NAME from FILE; secrets still encrypted with it become unreadable, so run 'reencrypt-secrets' first",
			ArgsUsage: "FILE NAME",
			Action: func(c *cli.Context) error {
				return editKeyFile(c, func(f *encryption.File) (string, error) {
					i, err := keyIndex(c, f)
					if err != nil {
						return "", err
					}
					if i == 0 {
						return "", fmt.Errorf("key %q encrypts new writes; promote another key first", f.Keys[i].Name)
					}
					name := f.Keys[i].Name
					f.Keys = slices.Delete(f.Keys, i, i+1)
					return fmt.Sprintf("removed key %q", name), nil
				})
			},
		},
	},
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("want %s", what)
	}
	return c.Args().First(), nil
}

func newKey(c *cli.Context) (encryption.FileKey, error) {
	name := c.String("name")
	if name == "" {
		name = defaultKeyName(time.Now())
	}
	return encryption.NewFileKey(name)
}

// editKeyFile reads the FILE argument, applies edit and writes it back
// (validated, atomically, 0600).
func editKeyFile(c *cli.Context, edit func(*encryption.File) (string, error)) error {
	path := c.Args().First()
	if path == "" {
		return fmt.Errorf("want FILE")
	}
	f, err := encryption.ReadFile(path)
	if err != nil {
		return err
	}
	msg, err := edit(&f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := encryption.WriteFile(path, f, false); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: %s\n", path, msg)
	return nil
}

func keyIndex(c *cli.Context, f *encryption.File) (int, error) {
	if c.NArg() != 2 {
		return 0, fmt.Errorf("want FILE NAME")
	}
	name := c.Args().Get(1)
	for i, fk := range f.Keys {
		if fk.Name == name {
			return i, nil
		}
	}
	names := make([]string, len(f.Keys))
	for i, fk := range f.Keys {
		names[i] = fk.Name
	}
	return 0, fmt.Errorf("no key %q (keys: %s)", name, strings.Join(names, ", "))
}

var reencryptCommand = &cli.Command{
	Name:  "reencrypt-secrets",
	Usage: "rewrite every secret in etcd with the key file's first key (safe to re-run)",
	Description: `Reads every secret under secrets/ with any key of the file (or as plain text,
if written before encryption) and rewrites those not already encrypted with the
first key, each with a compare-and-swap, so API writes in between are kept.
Run it after every apiserver uses the file's first key for writes; afterwards
the other keys can be removed. Talks to etcd directly (--etcd-* flags).`,
	Flags: []cli.Flag{&cli.StringFlag{Name: "encryption-key-file", Usage: "the key file (required)", EnvVars: []string{"KILN_ENCRYPTION_KEY_FILE"}, Required: true}},
	Action: func(c *cli.Context) error {
		path := c.String("encryption-key-file")
		keys, err := encryption.Load(path)
		if err != nil {
			return err
		}
		st, err := dialEtcd(c)
		if err != nil {
			return err
		}
		defer st.Close()
		res, err := secret.New(st, keys).Reencrypt(c.Context)
		before := make([]string, 0, len(res.Before))
		for name, n := range res.Before {
			if name == "" {
				name = "plain text"
			}
			before = append(before, fmt.Sprintf("%s: %d", name, n))
		}
		sort.Strings(before)
		if len(before) == 0 {
			before = []string{"no secrets"}
		}
		fmt.Fprintf(c.App.Writer, "rewrote %d secrets with key %q, %d already current (found %s)\n",
			res.Rewritten, keys.WriteKey(), res.Current, strings.Join(before, ", "))
		if err != nil {
			return err
		}
		if others := keys.Names()[1:]; len(others) > 0 {
			fmt.Fprintf(c.App.Writer, "no secret needs %s any more; once every apiserver writes with %q, remove them from %s\n",
				strings.Join(others, ", "), keys.WriteKey(), path)
		}
		return nil
	},
}
