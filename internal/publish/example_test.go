package publish_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryhq/ferry/internal/publish"
)

func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "bucket")
	defer os.RemoveAll(dir)

	p, err := publish.New(ctx, "file://"+filepath.ToSlash(dir)+"?prefix=builds/", publish.Options{PublicBaseURL: "https://cdn.example.com"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	obj, err := p.Put(ctx, publish.File{Name: "com.acme.app/1.2.3/bundle.zip", Body: strings.NewReader("zip bytes"), ContentType: "application/zip"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(obj.URL, obj.Size, obj.Reused)
	// Output: https://cdn.example.com/builds/com.acme.app/1.2.3/bundle.zip 9 false
}
