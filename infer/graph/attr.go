package graph

import "fmt"

func (n *Node) attrInt(name string, def int) int {
	if a, ok := n.Attr[name]; ok {
		return int(a.GetI())
	}
	return def
}

func (n *Node) attrFloat(name string, def float32) float32 {
	if a, ok := n.Attr[name]; ok {
		return a.GetF()
	}
	return def
}

func (n *Node) attrString(name, def string) string {
	if a, ok := n.Attr[name]; ok {
		return string(a.GetS())
	}
	return def
}

// attrInts returns an ints attribute, or def when absent.
func (n *Node) attrInts(name string, def []int) []int {
	a, ok := n.Attr[name]
	if !ok {
		return def
	}
	out := make([]int, len(a.GetInts()))
	for i, v := range a.GetInts() {
		out[i] = int(v)
	}
	return out
}

// input returns input i, which must be a compile-time constant.
func (n *Node) constInput(i int) (*Tensor, error) {
	if i >= len(n.In) || n.In[i] == nil {
		return nil, nil
	}
	if n.In[i].Const == nil {
		return nil, fmt.Errorf("input %d (%s) must be known at compile time: %w", i, n.In[i].Name, ErrUnsupported)
	}
	return n.In[i].Const, nil
}

// axis normalises a possibly negative axis for a rank.
func axis(a, rank int) (int, error) {
	if a < 0 {
		a += rank
	}
	if a < 0 || a >= rank {
		return 0, fmt.Errorf("axis %d out of range for rank %d", a, rank)
	}
	return a, nil
}

func (n *Node) attrFloats(name string) []float32 {
	if a, ok := n.Attr[name]; ok {
		return a.GetFloats()
	}
	return nil
}
