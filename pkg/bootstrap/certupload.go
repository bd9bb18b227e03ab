package bootstrap

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/internal/kubeobj"
	"github.com/dk8s/dk8s/pkg/token"
)

// What a control plane joining the cluster needs from it, as kubeadm's
// --upload-certs hands it over: the cluster's CAs and the service-account
// key pair, each file sealed with a certificate key (AES-256-GCM) that
// travels only on the command line, in a Secret that goes when the token it
// belongs to expires. Every other certificate the new control plane makes
// itself, for its own names.

// certsSecret is the Secret in kube-system holding the sealed files.
const certsSecret = "dk8s-certs"

// sharedPKI are the PKI files every control plane of a cluster shares.
var sharedPKI = []string{
	"ca.crt", "ca.key",
	"front-proxy-ca.crt", "front-proxy-ca.key",
	"etcd/ca.crt", "etcd/ca.key",
	"sa.key", "sa.pub",
}

// NewCertificateKey draws a certificate key: 32 random bytes, in hex.
func NewCertificateKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func certificateKeyBytes(key string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(key))
	if err != nil || len(b) != 32 {
		return nil, errors.New("the certificate key must be 64 hex digits (32 bytes), as 'dk8s token create --control-plane' prints it")
	}
	return b, nil
}

// secretKey is a PKI file's key in the Secret ("etcd/ca.key" -> "etcd-ca.key").
func secretKey(file string) string { return strings.ReplaceAll(file, "/", "-") }

// CertsTTL is how long the sealed certificates stay in the cluster, as
// kubeadm keeps its own: long enough to join the control planes they were
// made for, whatever the join token's own --ttl.
const CertsTTL = 2 * time.Hour

// UploadCerts seals the shared PKI files of pkiDir with key and stores them
// in the cluster, owned by a token of their own that authenticates nothing
// and expires after CertsTTL: the token cleaner deletes it then, and the
// garbage collector the certificates with it.
func UploadCerts(ctx context.Context, cs kubernetes.Interface, pkiDir, key string) error {
	k, err := certificateKeyBytes(key)
	if err != nil {
		return err
	}
	owner, err := token.CreateOwner(ctx, cs, CertsTTL, "owns kube-system/"+certsSecret+": the sealed certificates go when it expires")
	if err != nil {
		return fmt.Errorf("the token the certificates belong to: %w", err)
	}
	ownerSecret, err := cs.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, "bootstrap-token-"+owner.ID, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("the token %s the certificates belong to: %w", owner.ID, err)
	}
	data := map[string][]byte{}
	for _, f := range sharedPKI {
		plain, err := os.ReadFile(filepath.Join(pkiDir, f))
		if err != nil {
			return fmt.Errorf("the cluster's %s: %w", f, err)
		}
		if data[secretKey(f)], err = seal(k, plain, f); err != nil {
			return err
		}
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: certsSecret, Namespace: metav1.NamespaceSystem, Labels: kubeobj.Managed(nil),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Secret", Name: ownerSecret.Name, UID: ownerSecret.UID}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
	_, err = cs.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = cs.CoreV1().Secrets(metav1.NamespaceSystem).Update(ctx, s, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("storing the sealed certificates in kube-system/%s: %w", certsSecret, err)
	}
	return nil
}

// DownloadCerts opens the sealed files with key and writes them under
// pkiDir: keys readable by root only.
func DownloadCerts(ctx context.Context, cs kubernetes.Interface, key, pkiDir string) error {
	files, err := openCerts(ctx, cs, key)
	if err != nil {
		return err
	}
	return writeCerts(pkiDir, files)
}

// openCerts reads the sealed files from the cluster and opens them with
// key, in memory: a wrong key is found before anything is written.
func openCerts(ctx context.Context, cs kubernetes.Interface, key string) (map[string][]byte, error) {
	k, err := certificateKeyBytes(key)
	if err != nil {
		return nil, err
	}
	s, err := cs.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, certsSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, errors.New("the cluster holds no certificates for a new control plane (they go when their token expires): run 'dk8s token create --control-plane --print-join-command' on a control plane and use what it prints")
	}
	if err != nil {
		return nil, fmt.Errorf("reading kube-system/%s: %w", certsSecret, err)
	}
	files := map[string][]byte{}
	for _, f := range sharedPKI {
		sealed, ok := s.Data[secretKey(f)]
		if !ok {
			return nil, fmt.Errorf("kube-system/%s lacks %s: run 'dk8s token create --control-plane' again", certsSecret, f)
		}
		if files[f], err = open(k, sealed, f); err != nil {
			return nil, errors.New("the certificate key does not open the cluster's certificates: it is not the one 'dk8s token create --control-plane' printed with this token (a newer one replaces it)")
		}
	}
	return files, nil
}

// writeCerts writes the opened files under pkiDir, keys readable by root
// only.
func writeCerts(pkiDir string, files map[string][]byte) error {
	for _, f := range sharedPKI {
		path := filepath.Join(pkiDir, f)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(f, ".key") {
			mode = 0o600
		}
		if err := atomicfile.Write(path, files[f], mode); err != nil {
			return err
		}
	}
	return nil
}

// seal encrypts plain with key, the file's name as GCM's additional data:
// one file's sealed bytes put in another's place do not open.
func seal(key, plain []byte, name string) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, plain, []byte(name)), nil
}

func open(key, sealed []byte, name string) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, errors.New("sealed data too short")
	}
	return gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], []byte(name))
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
